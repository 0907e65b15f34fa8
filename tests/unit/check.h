/*
 * check.h - the unit tests' assertions: each failure prints file:line and
 * what was expected, and the test executable exits non-zero at the end.
 */
#ifndef S3MEM_TEST_CHECK_H
#define S3MEM_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
            check_failures++;                                                 \
        }                                                                     \
    } while (0)

#define CHECK_INT(actual, expected)                                           \
    do {                                                                      \
        long long check_a_ = (long long)(actual);                             \
        long long check_e_ = (long long)(expected);                           \
        if (check_a_ != check_e_) {                                           \
            fprintf(stderr, "%s:%d: %s is %lld, expected %lld\n", __FILE__,   \
                    __LINE__, #actual, check_a_, check_e_);                   \
            check_failures++;                                                 \
        }                                                                     \
    } while (0)

#define CHECK_STR(actual, expected)                                           \
    do {                                                                      \
        const char *check_a_ = (actual);                                      \
        const char *check_e_ = (expected);                                    \
        if (!check_a_ || !check_e_ || strcmp(check_a_, check_e_) != 0) {      \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n",         \
                    __FILE__, __LINE__, #actual,                              \
                    check_a_ ? check_a_ : "(null)",                           \
                    check_e_ ? check_e_ : "(null)");                          \
            check_failures++;                                                 \
        }                                                                     \
    } while (0)

#define CHECK_MEM(actual, expected, len)                                      \
    do {                                                                      \
        if (memcmp((actual), (expected), (len)) != 0) {                       \
            fprintf(stderr, "%s:%d: %s differs from %s\n", __FILE__,          \
                    __LINE__, #actual, #expected);                            \
            check_failures++;                                                 \
        }                                                                     \
    } while (0)

/* Runs one test function and reports its name when it added failures. */
#define RUN(test)                                                             \
    do {                                                                      \
        int check_before_ = check_failures;                                   \
        test();                                                               \
        fprintf(stderr, "%s %s\n", check_failures == check_before_ ?          \
                "ok  " : "FAIL", #test);                                      \
    } while (0)

#define CHECK_EXIT() (check_failures ? (fprintf(stderr, "%d check(s) failed\n", \
                      check_failures), 1) : 0)

#endif
