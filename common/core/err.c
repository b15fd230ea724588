/* err.c - names for error codes and their mapping to exit statuses. */
#include "err.h"

#include <string.h>

const char *err_str(int rc) {
    switch (rc) {
    case GB_OK: return "success";
    case GB_EFORMAT: return "GB_EFORMAT: not in the expected format";
    case GB_ECORRUPT: return "GB_ECORRUPT: data is corrupt or truncated";
    case GB_ETOOBIG: return "GB_ETOOBIG: over the size limit";
    case GB_EVERSION: return "GB_EVERSION: unknown format version";
    case GB_ENOTFOUND: return "GB_ENOTFOUND: not found";
    case GB_EMISMATCH: return "GB_EMISMATCH: does not match";
    case GB_EPEER: return "GB_EPEER: malformed message from peer";
    case GB_EINTR: return "GB_EINTR: interrupted";
    case GB_EDB: return "GB_EDB: database error";
    case GB_ENUMERIC: return "GB_ENUMERIC: NaN or Inf";
    case GB_EUNSUPPORTED: return "GB_EUNSUPPORTED: unsupported";
    default: break;
    }
    if (rc > 0) return strerror(rc);
    return "unknown error";
}

int err_exit_code(int rc) {
    switch (rc) {
    case GB_OK: return GB_EXIT_OK;
    case GB_EFORMAT: case GB_ECORRUPT: case GB_ETOOBIG: case GB_EVERSION:
    case GB_EMISMATCH: case GB_EUNSUPPORTED: return GB_EXIT_DATA;
    case GB_ENOTFOUND: case GB_EDB: return GB_EXIT_IO;
    case GB_EPEER: return GB_EXIT_PEER;
    case GB_EINTR: return GB_EXIT_INTERRUPTED;
    case GB_ENUMERIC: return GB_EXIT_NUMERIC;
    default: break;
    }
    return rc > 0 ? GB_EXIT_IO : GB_EXIT_FAIL;
}
