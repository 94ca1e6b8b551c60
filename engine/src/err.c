/*
 * Error names and messages, generated from BG_ERRNO_MAP so that the enum,
 * bg_strerror() and bg_err_name() always agree.
 */
#include "boxguard/err.h"

const char *bg_strerror(bg_err err)
{
    switch (err) {
    case BG_OK:
        return "success";
#define BG__ERR_MSG(name, val, msg)                                            \
    case BG_E##name:                                                           \
        return msg;
        BG_ERRNO_MAP(BG__ERR_MSG)
#undef BG__ERR_MSG
    }
    return "unknown error";
}

const char *bg_err_name(bg_err err)
{
    switch (err) {
    case BG_OK:
        return "OK";
#define BG__ERR_NAME(name, val, msg)                                           \
    case BG_E##name:                                                           \
        return #name;
        BG_ERRNO_MAP(BG__ERR_NAME)
#undef BG__ERR_NAME
    }
    return "UNKNOWN";
}
