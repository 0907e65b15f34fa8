/*
 * test_util.c - unit tests for util.h: MD5, hex, base64, ISO times, the
 * error report, the allocation hook, hashing and UTF-8 validation.
 */
#include "check.h"

#include "s3mem/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

/* Length of a string literal, embedded NULs included. */
#define LITERAL_LENGTH(text) (sizeof(text) - 1)

/* ---- MD5 ---------------------------------------------------------------- */

static void md5_hex_of(const void *data, size_t len, char hex[33])
{
    struct s3m_md5 ctx;
    unsigned char digest[16];

    s3m_md5_init(&ctx);
    s3m_md5_update(&ctx, data, len);
    s3m_md5_final(&ctx, digest);
    s3m_md5_hex(digest, hex);
}

/* The test suite of RFC 1321 appendix A.5. */
static void test_md5_rfc1321_suite(void)
{
    static const struct {
        const char *text;
        const char *md5;
    } cases[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890"
         "1234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    char hex[33];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        md5_hex_of(cases[i].text, strlen(cases[i].text), hex);
        CHECK_STR(hex, cases[i].md5);
    }
}

/* Digests of "aaa..." at the lengths where padding spills into an extra
 * block, computed independently (Python hashlib). */
static void test_md5_padding_known(void)
{
    static const struct {
        size_t len;
        const char *md5;
    } cases[] = {
        {55, "ef1772b6dff9a122358552954ad0df65"},
        {56, "3b0c8ac703f828b04c6c197006d17218"},
        {57, "652b906d60af96844ebd21b674f35e93"},
        {63, "b06521f39153d618550606be297466d5"},
        {64, "014842d480b571495a4a0363793f7367"},
        {65, "c743a45e0d2e6a95cb859adae0248435"},
        {119, "8a7bd0732ed6a28ce75f6dabc90e1613"},
        {120, "5f61c0ccad4cac44c75ff505e1f1e537"},
    };
    char text[120], hex[33];

    memset(text, 'a', sizeof(text));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        md5_hex_of(text, cases[i].len, hex);
        CHECK_STR(hex, cases[i].md5);
    }
}

/* Lengths around the 56- and 64-byte padding boundaries, fed one byte at a
 * time and all at once, must agree. */
static void test_md5_padding_boundaries(void)
{
    unsigned char data[130];

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 1);
    for (size_t len = 0; len <= sizeof(data); len++) {
        struct s3m_md5 ctx;
        unsigned char digest[16];
        char whole[33], bytewise[33];

        md5_hex_of(data, len, whole);
        s3m_md5_init(&ctx);
        for (size_t i = 0; i < len; i++)
            s3m_md5_update(&ctx, data + i, 1);
        s3m_md5_final(&ctx, digest);
        s3m_md5_hex(digest, bytewise);
        CHECK_STR(bytewise, whole);
    }
}

/* 1 MiB fed in odd-sized pieces equals the one-shot digest, and both equal
 * the digest computed independently (Python hashlib). */
static void test_md5_large_in_pieces(void)
{
    size_t size = 1 << 20;
    unsigned char *data = malloc(size);
    static const size_t pieces[] = {1, 3, 63, 64, 65, 127, 1000, 4093, 0, 7};
    struct s3m_md5 ctx;
    unsigned char digest[16];
    char whole[33], pieced[33];
    size_t offset = 0;

    CHECK(data != NULL);
    if (!data)
        return;
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)((i * 31) ^ (i >> 8));
    md5_hex_of(data, size, whole);
    CHECK_STR(whole, "9beba67f4cd259c833e5cd8d27dccd8f");

    s3m_md5_init(&ctx);
    for (size_t i = 0; offset < size; i++) {
        size_t take = pieces[i % (sizeof(pieces) / sizeof(pieces[0]))];

        take = take < size - offset ? take : size - offset;
        s3m_md5_update(&ctx, data + offset, take);
        offset += take;
    }
    s3m_md5_final(&ctx, digest);
    s3m_md5_hex(digest, pieced);
    CHECK_STR(pieced, whole);
    free(data);
}

static void test_md5_hex_round_trip(void)
{
    unsigned char digest[16], parsed[16];
    char hex[33];

    for (unsigned i = 0; i < 16; i++)
        digest[i] = (unsigned char)(i * 17 + 0x0f);
    s3m_md5_hex(digest, hex);
    CHECK_STR(hex, "0f2031425364758697a8b9cadbecfd0e");
    CHECK(s3m_md5_parse_hex(hex, parsed));
    CHECK_MEM(parsed, digest, 16);
    CHECK(s3m_md5_parse_hex("0F2031425364758697A8B9CADBECFD0E", parsed));
    CHECK_MEM(parsed, digest, 16);
}

static void test_md5_parse_hex_rejects(void)
{
    static const char *const bad[] = {
        "",
        "0f2031425364758697a8b9cadbecfd0",    /* 31 digits */
        "0f2031425364758697a8b9cadbecfd0e0",  /* 33 digits */
        "0f2031425364758697a8b9cadbecfd0g",   /* not hex */
        "g0f2031425364758697a8b9cadbecfd0",
        " 0f2031425364758697a8b9cadbecfd0e",
        "0f2031425364758697a8b9cadbecfd0e ",
        "0x2031425364758697a8b9cadbecfd0e",
        "\"0f2031425364758697a8b9cadbecfd0e\"",
    };
    unsigned char digest[16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (s3m_md5_parse_hex(bad[i], digest)) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            CHECK(!"parse_hex accepted bad input");
        }
    }
}

/* ---- base64 ------------------------------------------------------------- */

static void test_base64_rfc4648_vectors(void)
{
    static const struct {
        const char *data;
        const char *text;
    } cases[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
        {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].data);
        char text[16];
        unsigned char data[16];
        size_t data_len = 99;

        CHECK_INT(s3m_base64_encoded_length(len), strlen(cases[i].text));
        s3m_base64_encode(cases[i].data, len, text);
        CHECK_STR(text, cases[i].text);
        CHECK_INT(s3m_base64_decode(text, strlen(text), data, &data_len), 0);
        CHECK_INT(data_len, len);
        CHECK_MEM(data, cases[i].data, len);
    }
}

static void test_base64_decode_without_padding(void)
{
    unsigned char data[16];
    size_t len = 0;

    CHECK_INT(s3m_base64_decode("Zg", 2, data, &len), 0);
    CHECK_INT(len, 1);
    CHECK_MEM(data, "f", 1);
    CHECK_INT(s3m_base64_decode("Zm8", 3, data, &len), 0);
    CHECK_INT(len, 2);
    CHECK_MEM(data, "fo", 2);
    CHECK_INT(s3m_base64_decode("Zm9vYmE", 7, data, &len), 0);
    CHECK_INT(len, 5);
    CHECK_MEM(data, "fooba", 5);
    /* text_len, not the NUL, ends the text. */
    CHECK_INT(s3m_base64_decode("Zm9vYmFy", 4, data, &len), 0);
    CHECK_INT(len, 3);
    CHECK_MEM(data, "foo", 3);
}

/* Every byte value survives a round trip, at every length mod 3. */
static void test_base64_all_bytes(void)
{
    unsigned char data[256], decoded[256 / 3 * 3 + 3 + 3];
    char text[345];

    for (unsigned i = 0; i < 256; i++)
        data[i] = (unsigned char)(255 - i);
    for (size_t len = 254; len <= 256; len++) {
        size_t decoded_len = 0;

        s3m_base64_encode(data, len, text);
        CHECK_INT(strlen(text), s3m_base64_encoded_length(len));
        CHECK_INT(s3m_base64_decode(text, strlen(text), decoded, &decoded_len),
                  0);
        CHECK_INT(decoded_len, len);
        CHECK_MEM(decoded, data, len);
    }
}

static void test_base64_rejects(void)
{
    static const char *const bad[] = {
        "Z",         "Zm9vY",      "Zg=",       "Zg===",    "=",
        "==",        "====",       "Z===",      "Zm9v!",    "Zm 9v",
        "Zm9v\n",    "Zg==Zg==",   "Z=g=",      "Zm-v",     "Zm_v",
        "Zm9vYmE==", "Zm9vY===",
    };
    unsigned char data[16];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = 99;

        if (s3m_base64_decode(bad[i], strlen(bad[i]), data, &len) != -EINVAL) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            CHECK(!"base64 decode accepted bad input");
        }
        CHECK_INT(len, 99);
    }
    /* An embedded NUL is a character outside the alphabet. */
    CHECK_INT(s3m_base64_decode("Zm8\0", 4, data, &(size_t){0}), -EINVAL);
}

/* ---- time --------------------------------------------------------------- */

#define NS_PER_MS 1000000LL

static void check_format(int64_t ns, const char *expected, int line)
{
    char text[32];

    s3m_time_format_iso(ns, text);
    if (strcmp(text, expected) != 0) {
        fprintf(stderr, "line %d: %lld formats as %s\n", line, (long long)ns,
                text);
        CHECK_STR(text, expected);
    }
}

static void check_parse(const char *text, int64_t expected, int line)
{
    int64_t ns = 12345;

    if (s3m_time_parse_iso(text, &ns) != 0 || ns != expected) {
        fprintf(stderr, "line %d: '%s' parses as %lld\n", line, text,
                (long long)ns);
        CHECK_INT(ns, expected);
    }
}

static void test_time_known_values(void)
{
    static const struct {
        const char *text;
        int64_t ns;
    } cases[] = {
        {"2026-11-21T22:32:08.792Z", 1795300328792 * NS_PER_MS},
        {"1970-01-01T00:00:00.000Z", 0},
        {"1969-12-31T23:59:59.999Z", -1 * NS_PER_MS},
        {"1900-03-01T00:00:00.000Z", -2203891200000 * NS_PER_MS},
        {"2000-02-29T23:59:59.999Z", 951868799999 * NS_PER_MS},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_format(cases[i].ns, cases[i].text, __LINE__);
        check_parse(cases[i].text, cases[i].ns, __LINE__);
    }
}

/* Formatting truncates toward minus infinity, to whole milliseconds. */
static void test_time_format_floors(void)
{
    check_format(-1, "1969-12-31T23:59:59.999Z", __LINE__);
    check_format(999999, "1970-01-01T00:00:00.000Z", __LINE__);
    check_format(-NS_PER_MS, "1969-12-31T23:59:59.999Z", __LINE__);
    check_format(-NS_PER_MS - 1, "1969-12-31T23:59:59.998Z", __LINE__);
    check_format(INT64_MAX, "2262-04-11T23:47:16.854Z", __LINE__);
    check_format(INT64_MIN, "1677-09-21T00:12:43.145Z", __LINE__);
}

/* Millisecond times across the whole int64 range survive format + parse. */
static void test_time_round_trips(void)
{
    uint64_t state = 88172645463325252ULL;
    int64_t ms_max = INT64_MAX / NS_PER_MS;

    for (int i = 0; i < 20000; i++) {
        char text[32];
        int64_t ns = 0, ms;

        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ms = (int64_t)(state % (2 * (uint64_t)ms_max)) - ms_max + 1;
        s3m_time_format_iso(ms * NS_PER_MS, text);
        CHECK_INT(s3m_time_parse_iso(text, &ns), 0);
        CHECK_INT(ns, ms * NS_PER_MS);
    }
}

static void test_time_parse_fractions(void)
{
    check_parse("2026-11-21T22:32:08Z", 1795300328 * 1000000000LL, __LINE__);
    check_parse("1970-01-01T00:00:00.7Z", 700000000, __LINE__);
    check_parse("1970-01-01T00:00:00.79Z", 790000000, __LINE__);
    check_parse("1970-01-01T00:00:00.792Z", 792000000, __LINE__);
    check_parse("1970-01-01T00:00:00.7921Z", 792100000, __LINE__);
    check_parse("1970-01-01T00:00:00.79212Z", 792120000, __LINE__);
    check_parse("1970-01-01T00:00:00.792123Z", 792123000, __LINE__);
    check_parse("1970-01-01T00:00:00.7921234Z", 792123400, __LINE__);
    check_parse("1970-01-01T00:00:00.79212345Z", 792123450, __LINE__);
    check_parse("1970-01-01T00:00:00.792123456Z", 792123456, __LINE__);
    /* Digits beyond nanoseconds are ignored. */
    check_parse("1970-01-01T00:00:00.7921234569Z", 792123456, __LINE__);
    check_parse("1969-12-31T23:59:59.000000001Z", -999999999, __LINE__);
    check_parse("1969-12-31T23:59:59.999999999Z", -1, __LINE__);
}

static void test_time_parse_limits(void)
{
    int64_t ns = 7;

    check_parse("2262-04-11T23:47:16.854775807Z", INT64_MAX, __LINE__);
    check_parse("1677-09-21T00:12:43.145224192Z", INT64_MIN, __LINE__);
    CHECK_INT(s3m_time_parse_iso("2262-04-11T23:47:16.854775808Z", &ns),
              -EINVAL);
    CHECK_INT(s3m_time_parse_iso("1677-09-21T00:12:43.145224191Z", &ns),
              -EINVAL);
    CHECK_INT(s3m_time_parse_iso("1600-02-29T12:34:56.789Z", &ns), -EINVAL);
    CHECK_INT(s3m_time_parse_iso("9999-12-31T23:59:59Z", &ns), -EINVAL);
    CHECK_INT(ns, 7);
}

static void test_time_parse_rejects(void)
{
    static const char *const bad[] = {
        "",
        "2026",
        "2026-11-21",
        "2026-11-21T22:32:08",
        "2026-11-21T22:32:08.792",
        "2026-11-21T22:32:08.Z",
        "2026-11-21T22:32:08.792Zx",
        "2026-11-21T22:32:08.792Z ",
        " 2026-11-21T22:32:08.792Z",
        "2026-11-21 22:32:08.792Z",
        "2026-11-21t22:32:08.792Z",
        "2026-11-21T22:32:08.792z",
        "2026-11-21T22:32:08.792+00:00",
        "2026-11-21T22:32:08,792Z",
        "2026-11-21T22:32:08.-1Z",
        "2026-1-21T22:32:08Z",
        "+2026-11-21T22:32:08Z",
        "-2026-11-21T22:32:08Z",
        "20261121T223208Z",
        "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21T23:60:00Z",
        "2026-11-21T23:59:60Z",
        "2026-11-21T2a:32:08Z",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ns = 42;

        if (s3m_time_parse_iso(bad[i], &ns) != -EINVAL) {
            fprintf(stderr, "accepted '%s'\n", bad[i]);
            CHECK(!"time parse accepted bad input");
        }
        CHECK_INT(ns, 42);
    }
    check_parse("2024-02-29T00:00:00Z", 1709164800 * 1000000000LL, __LINE__);
}

static void test_time_now(void)
{
    int64_t first = s3m_time_now_ns();
    int64_t second = s3m_time_now_ns();

    /* After 2020-01-01 and not going backwards within a test run. */
    CHECK(first > 1577836800LL * 1000000000LL);
    CHECK(second >= first);
}

/* ---- errors ------------------------------------------------------------- */

static void test_error_first_wins(void)
{
    struct s3m_error err;

    s3m_error_clear(&err);
    CHECK_INT(err.code, 0);
    CHECK_STR(err.message, "");
    CHECK_INT(s3m_error_set(&err, ENOENT, "cannot read '%s': no such file",
                            "/x/s3db.json"), -ENOENT);
    CHECK_INT(err.code, ENOENT);
    CHECK_STR(err.message, "cannot read '/x/s3db.json': no such file");
    CHECK_INT(s3m_error_set(&err, -EEXIST, "second"), -EEXIST);
    CHECK_INT(err.code, ENOENT);
    CHECK_STR(err.message, "cannot read '/x/s3db.json': no such file");

    s3m_error_clear(&err);
    CHECK_INT(s3m_error_set(&err, -EINVAL, "bad %d", 3), -EINVAL);
    CHECK_INT(err.code, EINVAL);
    CHECK_STR(err.message, "bad 3");
    s3m_error_clear(NULL);
}

static void test_error_edge_cases(void)
{
    struct s3m_error err;
    char long_text[1000];

    CHECK_INT(s3m_error_set(NULL, ENOSPC, "ignored"), -ENOSPC);
    CHECK_INT(s3m_error_set(NULL, -ENOSPC, "ignored"), -ENOSPC);

    s3m_error_clear(&err);
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    CHECK_INT(s3m_error_set(&err, EIO, "%s", long_text), -EIO);
    CHECK_INT(strlen(err.message), sizeof(err.message) - 1);

    /* A zero code must not read as success. */
    s3m_error_clear(&err);
    CHECK_INT(s3m_error_set(&err, 0, "zero"), -EIO);
    CHECK_INT(err.code, EIO);
}

/* ---- allocation hook ---------------------------------------------------- */

static void test_alloc_fail_first(void)
{
    void *first, *second;

    s3m_alloc_fail_after(1, false);
    first = s3m_malloc(8);
    second = s3m_malloc(8);
    CHECK(first == NULL);
    CHECK(second != NULL);
    free(second);
    CHECK_INT(s3m_alloc_fail_after(0, false), 2);
}

/* s3m_grow keeps a buffer that fits, grows one that does not, and leaves
 * both buffer and capacity alone when the allocation fails. */
static void test_grow(void)
{
    size_t cap = 0;
    char *buf = s3m_grow(NULL, &cap, 10);
    CHECK(buf != NULL);
    CHECK_INT(cap, 32);
    memcpy(buf, "kept", 5);
    CHECK(s3m_grow(buf, &cap, 32) == buf);          /* fits: unchanged */
    CHECK_INT(cap, 32);
    s3m_alloc_fail_after(1, false);
    CHECK(s3m_grow(buf, &cap, 33) == NULL);
    s3m_alloc_fail_after(0, false);
    CHECK_INT(cap, 32);
    CHECK_STR(buf, "kept");
    buf = s3m_grow(buf, &cap, 100);
    CHECK(buf != NULL);
    CHECK_INT(cap, 128);
    CHECK_STR(buf, "kept");
    free(buf);
}

static void test_alloc_fail_third(void)
{
    void *blocks[4];

    s3m_alloc_fail_after(3, false);
    blocks[0] = s3m_malloc(8);
    blocks[1] = s3m_calloc(2, 8);
    blocks[2] = s3m_strdup("third");
    blocks[3] = s3m_memdup("four", 4);
    CHECK(blocks[0] != NULL);
    CHECK(blocks[1] != NULL);
    CHECK(blocks[2] == NULL);
    CHECK(blocks[3] != NULL);
    for (int i = 0; i < 4; i++)
        free(blocks[i]);
    CHECK_INT(s3m_alloc_fail_after(0, false), 4);
}

static void test_alloc_sticky(void)
{
    char *kept = NULL, *grown;
    void *blocks[4];

    s3m_alloc_fail_after(2, true);
    for (int i = 0; i < 4; i++)
        blocks[i] = i == 0 ? (kept = s3m_strndup("kept", 10)) : s3m_malloc(1);
    CHECK(blocks[0] != NULL);
    CHECK(blocks[1] == NULL);
    CHECK(blocks[2] == NULL);
    CHECK(blocks[3] == NULL);
    /* A failing realloc leaves the block allocated and unchanged. */
    grown = s3m_realloc(kept, 100);
    CHECK(grown == NULL);
    CHECK_STR(kept, "kept");
    CHECK_INT(s3m_alloc_fail_after(0, false), 5);
    free(kept);
}

/* With failures off the hook only counts, which is how a test learns how
 * many allocations an operation makes. */
static void test_alloc_counts(void)
{
    void *blocks[3];

    s3m_alloc_fail_after(0, false);
    CHECK_INT(s3m_alloc_fail_after(0, false), 0);
    blocks[0] = s3m_malloc(1);
    blocks[1] = s3m_realloc(NULL, 2);
    blocks[2] = s3m_memdup(NULL, 0);
    for (int i = 0; i < 3; i++) {
        CHECK(blocks[i] != NULL);
        free(blocks[i]);
    }
    CHECK_INT(s3m_alloc_fail_after(0, false), 3);
    CHECK_INT(s3m_alloc_fail_after(0, false), 0);
}

static void test_alloc_copies(void)
{
    char *copy = s3m_strndup("abcdef", 3);

    CHECK_STR(copy, "abc");
    free(copy);
    copy = s3m_strndup("ab", 10);
    CHECK_STR(copy, "ab");
    free(copy);
    copy = s3m_strdup("");
    CHECK_STR(copy, "");
    free(copy);
    copy = s3m_memdup("x\0y", 3);
    CHECK(copy != NULL && memcmp(copy, "x\0y", 3) == 0);
    free(copy);
}

/* ---- hashing ------------------------------------------------------------ */

static void test_hash(void)
{
    CHECK(s3m_hash("", 0) == 0x2d06800538d394c2ULL);
    CHECK(s3m_hash("abc", 3) == XXH3_64bits("abc", 3));
    CHECK(s3m_hash("abc", 3) != s3m_hash("abd", 3));
    CHECK(s3m_hash("abc", 2) == s3m_hash("abd", 2));
}

/* ---- UTF-8 -------------------------------------------------------------- */

#define UTF8_VALID(text) s3m_utf8_valid(text, LITERAL_LENGTH(text))

static void test_utf8_valid(void)
{
    CHECK(s3m_utf8_valid("", 0));
    CHECK(UTF8_VALID("plain/key.txt"));
    CHECK(UTF8_VALID("nul\0inside"));
    CHECK(UTF8_VALID("\x7f"));
    CHECK(UTF8_VALID("\xc2\x80"));             /* U+0080 */
    CHECK(UTF8_VALID("\xdf\xbf"));             /* U+07FF */
    CHECK(UTF8_VALID("\xe0\xa0\x80"));         /* U+0800 */
    CHECK(UTF8_VALID("\xe2\x82\xac"));         /* U+20AC euro */
    CHECK(UTF8_VALID("\xed\x9f\xbf"));         /* U+D7FF */
    CHECK(UTF8_VALID("\xee\x80\x80"));         /* U+E000 */
    CHECK(UTF8_VALID("\xef\xbf\xbf"));         /* U+FFFF */
    CHECK(UTF8_VALID("\xf0\x90\x80\x80"));     /* U+10000 */
    CHECK(UTF8_VALID("\xf0\x9f\x98\x80"));     /* U+1F600 */
    CHECK(UTF8_VALID("\xf4\x8f\xbf\xbf"));     /* U+10FFFF */
    CHECK(UTF8_VALID("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac"));
}

static void test_utf8_invalid(void)
{
    CHECK(!UTF8_VALID("\x80"));                /* lone continuation */
    CHECK(!UTF8_VALID("a\xbf"));
    CHECK(!UTF8_VALID("\xc0\x80"));            /* overlong NUL */
    CHECK(!UTF8_VALID("\xc1\xbf"));            /* overlong U+007F */
    CHECK(!UTF8_VALID("\xe0\x80\x80"));        /* overlong */
    CHECK(!UTF8_VALID("\xe0\x9f\xbf"));        /* overlong U+07FF */
    CHECK(!UTF8_VALID("\xed\xa0\x80"));        /* U+D800 surrogate */
    CHECK(!UTF8_VALID("\xed\xbf\xbf"));        /* U+DFFF surrogate */
    CHECK(!UTF8_VALID("\xf0\x80\x80\x80"));    /* overlong */
    CHECK(!UTF8_VALID("\xf0\x8f\xbf\xbf"));    /* overlong U+FFFF */
    CHECK(!UTF8_VALID("\xf4\x90\x80\x80"));    /* U+110000 */
    CHECK(!UTF8_VALID("\xf5\x80\x80\x80"));
    CHECK(!UTF8_VALID("\xf8\x88\x80\x80\x80"));
    CHECK(!UTF8_VALID("\xfe"));
    CHECK(!UTF8_VALID("\xff"));
    CHECK(!UTF8_VALID("\xc2"));                /* truncated */
    CHECK(!UTF8_VALID("\xe2\x82"));
    CHECK(!UTF8_VALID("\xf0\x9f\x98"));
    CHECK(!UTF8_VALID("\xc2\x41"));            /* bad continuation */
    CHECK(!UTF8_VALID("\xe2\x28\xa1"));
    CHECK(!UTF8_VALID("\xe2\x82\x28"));
    CHECK(!UTF8_VALID("\xf0\x9f\x98\x28"));
    /* len, not the NUL, ends the text: a sequence cut by len is truncated. */
    CHECK(!s3m_utf8_valid("\xe2\x82\xac", 2));
    CHECK(s3m_utf8_valid("ok\xe2\x82\xac", 2));
}

/* ---- mapped files ------------------------------------------------------ */

/* A temp file of len bytes of 'x'; returns its descriptor (path unlinked). */
static int temp_file(size_t len)
{
    char path[] = "/tmp/s3mem-test-mapped.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    char block[4096];
    memset(block, 'x', sizeof(block));
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(block) ? len - done : sizeof(block);
        CHECK(write(fd, block, n) == (ssize_t)n);
        done += n;
    }
    return fd;
}

static void test_mapped_file(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 3 * page + 10;
    int fd = temp_file(len);
    struct s3m_mapped mapped;
    CHECK_INT(s3m_mapped_open(fd, &mapped), 0);
    CHECK_INT(mapped.len, len);
    CHECK(mapped.data[0] == 'x' && mapped.data[len - 1] == 'x');
    CHECK(!s3m_mapped_damaged(&mapped));
    /* the file shrinks under the mapping: reads past its end see zeros
     * instead of a SIGBUS, and the mapping says so */
    CHECK_INT(ftruncate(fd, 100), 0);
    CHECK(mapped.data[99] == 'x');
    CHECK(mapped.data[2 * page + 1] == '\0');
    CHECK(s3m_mapped_damaged(&mapped));
    CHECK(mapped.data[len - 1] == '\0');
    s3m_mapped_close(&mapped);
    CHECK(mapped.data == NULL);
    s3m_mapped_close(&mapped);                     /* harmless twice */
    /* a fresh mapping of the shorter file is whole again */
    CHECK_INT(s3m_mapped_open(fd, &mapped), 0);
    CHECK_INT(mapped.len, 100);
    CHECK(!s3m_mapped_damaged(&mapped));
    s3m_mapped_close(&mapped);
    /* what cannot be mapped is left to be read */
    CHECK_INT(ftruncate(fd, 0), 0);
    CHECK_INT(s3m_mapped_open(fd, &mapped), -ENODEV);
    int pipe_fds[2];
    CHECK_INT(pipe(pipe_fds), 0);
    CHECK_INT(s3m_mapped_open(pipe_fds[0], &mapped), -ENODEV);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    CHECK_INT(s3m_mapped_open(-1, &mapped), -EBADF);
    close(fd);
}

/* s3m_path_within on a small tree: mnt stands for the daemon's mount; its
 * own symlink esc leads out of it, which a resolver that looked inside mnt
 * would follow (the real function must answer from the path alone). */
static void test_path_within(void)
{
    char base[] = "/tmp/s3mem-within.XXXXXX", root[64], path[256], target[128];
    CHECK(mkdtemp(base) != NULL);
    snprintf(root, sizeof(root), "%s/mnt", base);
    static const char *const dirs[] = {"mnt", "mntx", "out", "other"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", base, dirs[i]);
        CHECK_INT(mkdir(path, 0755), 0);
    }
    snprintf(target, sizeof(target), "%s/out", base);
    snprintf(path, sizeof(path), "%s/mnt/esc", base);
    CHECK_INT(symlink(target, path), 0);           /* inside: never followed */
    snprintf(path, sizeof(path), "%s/rel", base);
    CHECK_INT(symlink("mnt", path), 0);            /* relative, into mnt */
    snprintf(path, sizeof(path), "%s/abs", base);
    CHECK_INT(symlink(root, path), 0);             /* absolute, into mnt */
    snprintf(path, sizeof(path), "%s/chain", base);
    CHECK_INT(symlink("rel/deeper", path), 0);     /* through rel */
    snprintf(path, sizeof(path), "%s/loop", base);
    CHECK_INT(symlink("loop", path), 0);
    snprintf(path, sizeof(path), "%s/away", base);
    CHECK_INT(symlink("out", path), 0);            /* a link that stays out */
    static const struct {
        const char *rest;
        bool within;
    } cases[] = {
        {"/mnt", true}, {"/mnt/", true}, {"/mnt/a/b.json", true},
        {"/./mnt//x", true}, {"/other/../mnt/x", true},
        {"/mnt/esc/x", true},                      /* decided before esc */
        {"/rel/x", true}, {"/abs/backup", true}, {"/chain/f", true},
        {"/loop/x", true},                         /* unresolvable: refused */
        {"/mntx/a", false}, {"/out/state.json", false},
        {"/out/new/dir/f", false}, {"/away/f", false}, {"/mnt/../out", true},
        {"/other/missing/../../out/f", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", base, cases[i].rest);
        if (s3m_path_within(path, root) != cases[i].within) {
            fprintf(stderr, "  %s: want %s\n", cases[i].rest,
                    cases[i].within ? "within" : "outside");
            CHECK(false);
        }
    }
    CHECK(s3m_path_within("/anything", "/"));
    snprintf(path, sizeof(path), "%s/", root);      /* a root given with '/' */
    CHECK(s3m_path_within(root, path));
    snprintf(path, sizeof(path), "rm -rf '%s'", base);
    CHECK_INT(system(path), 0);
}

/* A SIGBUS outside every registered mapping goes to the action that was
 * there before: it still kills, as it would without the handler. */
static void test_mapped_foreign_sigbus(void)
{
    struct s3m_mapped mapped;
    int fd = temp_file(10);
    CHECK_INT(s3m_mapped_open(fd, &mapped), 0);   /* handler installed */
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        int other = temp_file(3 * page);
        volatile const char *raw = mmap(NULL, 3 * page, PROT_READ, MAP_SHARED,
                                        other, 0);
        int quiet = open("/dev/null", O_WRONLY);    /* no sanitizer report */
        if (raw == MAP_FAILED || ftruncate(other, 1) != 0 || quiet < 0 ||
            dup2(quiet, STDERR_FILENO) < 0)
            _exit(2);
        (void)raw[2 * page];                       /* not ours: SIGBUS */
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    /* killed by it; or, under AddressSanitizer (whose handler came first),
     * reported and exited with an error */
    CHECK(WIFSIGNALED(status) ? WTERMSIG(status) == SIGBUS
                              : WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                                    WEXITSTATUS(status) != 2);
    s3m_mapped_close(&mapped);
    close(fd);
}

int main(void)
{
    RUN(test_mapped_file);
    RUN(test_mapped_foreign_sigbus);
    RUN(test_md5_rfc1321_suite);
    RUN(test_md5_padding_known);
    RUN(test_md5_padding_boundaries);
    RUN(test_md5_large_in_pieces);
    RUN(test_md5_hex_round_trip);
    RUN(test_md5_parse_hex_rejects);
    RUN(test_base64_rfc4648_vectors);
    RUN(test_base64_decode_without_padding);
    RUN(test_base64_all_bytes);
    RUN(test_base64_rejects);
    RUN(test_time_known_values);
    RUN(test_time_format_floors);
    RUN(test_time_round_trips);
    RUN(test_time_parse_fractions);
    RUN(test_time_parse_limits);
    RUN(test_time_parse_rejects);
    RUN(test_time_now);
    RUN(test_error_first_wins);
    RUN(test_error_edge_cases);
    RUN(test_alloc_fail_first);
    RUN(test_alloc_fail_third);
    RUN(test_grow);
    RUN(test_alloc_sticky);
    RUN(test_alloc_counts);
    RUN(test_alloc_copies);
    RUN(test_hash);
    RUN(test_utf8_valid);
    RUN(test_utf8_invalid);
    RUN(test_path_within);
    return CHECK_EXIT();
}
