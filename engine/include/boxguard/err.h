/*
 * boxguard error codes.
 *
 * Every fallible boxguard function returns a bg_err: 0 on success or one of
 * the negative codes below. One X-macro list produces the enum, the names and
 * the messages so they can never drift apart. The store additionally keeps a
 * detail message with context (box, key, file offset): see bg_store_detail().
 */
#ifndef BOXGUARD_ERR_H
#define BOXGUARD_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, value, message) */
#define BG_ERRNO_MAP(XX)                                                       \
    XX(IO, -1, "input/output error")                                           \
    XX(NOSPACE, -2, "no space left on device")                                 \
    XX(CORRUPT, -3, "data is damaged")                                         \
    XX(AUTH, -4, "authentication failed")                                      \
    XX(INVALID, -5, "invalid argument or input")                               \
    XX(SCHEMA, -6, "record does not match its schema")                         \
    XX(COLLISION, -7, "typeId collision")                                      \
    XX(NOTFOUND, -8, "not found")                                              \
    XX(EXISTS, -9, "already exists")                                           \
    XX(LOCKED, -10, "locked by another opener")                                \
    XX(STATE, -11, "operation not allowed in the current state")               \
    XX(NOMEM, -12, "out of memory")

typedef enum bg_err_code {
    BG_OK = 0,
#define BG__ERR_ENUM(name, val, msg) BG_E##name = (val),
    BG_ERRNO_MAP(BG__ERR_ENUM)
#undef BG__ERR_ENUM
} bg_err_code;

/* A return value: 0 or a negative bg_err_code. */
typedef int bg_err;

#if defined(__GNUC__) || defined(__clang__)
#define BG_MUST_CHECK __attribute__((warn_unused_result))
#else
#define BG_MUST_CHECK
#endif

/* Returns a static, human-readable message for err ("unknown error" for
 * values outside the list). Never NULL. */
const char *bg_strerror(bg_err err);

/* Returns the symbolic name of err without the prefix ("IO", "CORRUPT", ...;
 * "OK" for 0, "UNKNOWN" otherwise). Never NULL. */
const char *bg_err_name(bg_err err);

#ifdef __cplusplus
}
#endif
#endif
