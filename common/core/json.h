/* json.h - the one way gambar writes JSON scalars, so every program's JSON
 * (reports, plans, dashboard events, provenance) escapes and formats the
 * same way.
 *
 * POLICY
 *   strings: UTF-8 in, UTF-8 out, quoted. '"' and '\' are escaped with a
 *     backslash; \n \r \t \b \f use their short escapes; every other
 *     control byte (0x00-0x1F) and DEL (0x7F) is written \u00XX (lower-case
 *     hex); each byte that does not start a valid UTF-8 sequence (overlong
 *     forms, surrogates, code points above U+10FFFF, cut sequences, stray
 *     continuation bytes) becomes U+FFFD, written \ufffd; valid multi-byte
 *     sequences are copied as they are. NULL is written as "".
 *   numbers: the shortest of %.15g, %.16g, %.17g that reads back as the
 *     same double (so 0.1 stays 0.1 and every double round-trips);
 *     NaN and the infinities, which JSON cannot express, are null. */
#ifndef GB_JSON_H
#define GB_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Write s as a JSON string literal to f (see POLICY). */
void json_str(FILE *f, const char *s);

/* Write v as a JSON number, or null when it is not finite (see POLICY). */
void json_num(FILE *f, double v);

/* Length (1..4) of the valid UTF-8 sequence at s, 0 when the byte at s
 * does not start one (s must be NUL-terminated; a NUL is length 1). */
int json_utf8_len(const unsigned char *s);

/* Format v as json_num does into buf (at least 32 bytes); returns buf. */
char *json_num_fmt(double v, char buf[32]);

#endif
