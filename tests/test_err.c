/* Error codes: every code has a distinct name and message. */
#include "check.h"

static void test_names_and_messages(void)
{
    static const bg_err codes[] = {
#define XX(name, val, msg) BG_E##name,
        BG_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof codes / sizeof codes[0];
    CHECK_INT(n, ==, 12);
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(codes[i], <, 0);
        CHECK(strcmp(bg_err_name(codes[i]), "UNKNOWN"));
        CHECK(strcmp(bg_strerror(codes[i]), "unknown error"));
        for (size_t j = 0; j < i; j++) {
            CHECK_INT(codes[i], !=, codes[j]);
            CHECK(strcmp(bg_err_name(codes[i]), bg_err_name(codes[j])));
        }
    }
    CHECK_STR(bg_err_name(0), "OK");
    CHECK_STR(bg_err_name(BG_ECORRUPT), "CORRUPT");
    CHECK_STR(bg_strerror(BG_ENOSPACE), "no space left on device");
    CHECK_STR(bg_err_name(-999), "UNKNOWN");
    CHECK_STR(bg_strerror(42), "unknown error");
}

int main(void)
{
    RUN(test_names_and_messages);
    return CHECK_DONE();
}
