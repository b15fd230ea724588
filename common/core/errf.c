/* errf.c - gb_errf, the one "format a reason into the caller's buffer and
 * return a code" helper (see err.h), so modules that report errors through
 * (err, errlen) pairs share it instead of each keeping a private copy. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int gb_errf(char *err, size_t errlen, int rc, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}
