/*
 * test_format_json.c - src/format/json_read.c, the parser behind load,
 * import and export: what it accepts and builds, and how it refuses.
 */
#include <errno.h>
#include <jansson.h>

#include "../../src/format/internal.h"
#include "check.h"
#include "s3mem/util.h"

static json_t *parse(const char *text)
{
    struct fmt_json_error error;
    return fmt_json_parse(text, strlen(text), &error);
}

/* The error of a refused text (its value must be NULL). */
static struct fmt_json_error refused(const char *text, size_t len)
{
    struct fmt_json_error error;
    json_t *value = fmt_json_parse(text, len, &error);
    CHECK(value == NULL);
    json_decref(value);
    return error;
}

static void test_values_match_jansson(void)
{
    static const char *const texts[] = {
        "{\"a\":[1,-2,3.5,1e3,-0,true,false,null],\"b\":{\"c\":\"d\"}}",
        " \t\r\n\"plain\" ",
        "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u20ac\"",
        "\"pair \\ud83d\\ude00 and \\u0000 inside\"",
        "\"Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80\"",
        "{\"dup\":1,\"other\":2,\"dup\":3}",
        "[[[[[]]]],{},[{}]]",
        "9223372036854775807",
        "-9223372036854775808",
        "0.000001",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_error_t error;
        json_t *ours = parse(texts[i]);
        json_t *theirs = json_loadb(texts[i], strlen(texts[i]),
                                    JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
        CHECK(ours != NULL);
        CHECK(theirs != NULL);
        if (!json_equal(ours, theirs))
            fprintf(stderr, "differs from jansson: %s\n", texts[i]);
        CHECK(json_equal(ours, theirs));
        json_decref(ours);
        json_decref(theirs);
    }
}

static void test_strings_decode(void)
{
    json_t *value = parse("\"a\\u0000b\\ud83d\\ude00\\n\"");
    CHECK(json_is_string(value));
    CHECK_INT(json_string_length(value), 8);
    CHECK_MEM(json_string_value(value), "a\0b\xf0\x9f\x98\x80\n", 8);
    json_decref(value);

    /* a later duplicate wins, in the first one's place */
    value = parse("{\"k\":1,\"j\":2,\"k\":3}");
    CHECK_INT(json_integer_value(json_object_get(value, "k")), 3);
    CHECK_STR(json_object_iter_key(json_object_iter(value)), "k");
    json_decref(value);
}

/* Strings are scanned 8 bytes at a time: an escape, a UTF-8 sequence, a
 * control byte or the closing quote at any place of a word or of the tail
 * must be seen where it is. */
static void test_string_scan_bounds(void)
{
    static const char *const specials[] = {"\\n", "\\\"", "\xc3\xa9",
                                           "\xe2\x82\xac", "~", " ", "\x7f"};
    /* past two 16-byte blocks, the 8-byte words and the byte tail */
    static const char lower[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmn";
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN";
    for (size_t at = 0; at < 40; at++) {
        for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
            char text[96];
            int n = snprintf(text, sizeof(text), "[\"%.*s%s%.*s\",1]", (int)at,
                             lower, specials[k], (int)(39 - at), upper);
            json_error_t error;
            json_t *ours = parse(text);
            json_t *theirs = json_loadb(text, (size_t)n, 0, &error);
            CHECK(ours != NULL && theirs != NULL && json_equal(ours, theirs));
            json_decref(ours);
            json_decref(theirs);
            text[2 + at] = '\x01';          /* a control byte: refused */
            struct fmt_json_error refusal = refused(text, (size_t)n);
            CHECK_INT(refusal.position, 2 + at);
        }
    }
}

static void test_big_integer_becomes_real(void)
{
    json_t *value = parse("[9223372036854775808, -1e400000000000000000]");
    CHECK(value == NULL);   /* the second overflows a double */
    value = parse("9223372036854775808");
    CHECK(json_is_real(value));
    CHECK(json_real_value(value) == 9223372036854775808.0);
    json_decref(value);
}

static void test_refusals(void)
{
    static const struct {
        const char *text;
        const char *message;
        int line, column;
    } cases[] = {
        {"", "premature end of input", 1, 1},
        {"{\"a\":1,}", "string or '}' expected", 1, 8},
        {"[1 2]", "',' or ']' expected", 1, 4},
        {"{\"a\" 1}", "':' expected", 1, 6},
        {"\"open", "premature end of input in a string", 1, 6},
        {"\"tab\there\"", "control character 0x09 in a string", 1, 5},
        {"\"\\x\"", "invalid escape", 1, 2},
        {"\"\\udc00\"", "invalid Unicode '\\uDC00'", 1, 2},
        {"\"\\ud800x\"", "invalid Unicode '\\uD800'", 1, 2},
        {"\"\xff\"", "unable to decode byte 0xff", 1, 2},
        {"\"\xed\xa0\x80\"", "unable to decode byte 0xed", 1, 2},
        {"01", "end of input expected", 1, 2},
        {"-", "invalid number", 1, 1},
        {"1.", "invalid number", 1, 1},
        {"tru", "invalid token", 1, 1},
        {"{\n\"k\":\n  nope}", "invalid token", 3, 3},
        {"[1] x", "end of input expected", 1, 5},
        {"{\"a\\u0000b\":1}", "NUL byte in object key not supported", 1, 2},
        {"\"\xc3\xab\" \xc3\xab", "end of input expected", 1, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fmt_json_error error = refused(cases[i].text,
                                              strlen(cases[i].text));
        if (strcmp(error.text, cases[i].message) != 0 ||
            error.line != cases[i].line || error.column != cases[i].column)
            fprintf(stderr, "case %zu: '%s' at %d:%d\n", i, error.text,
                    error.line, error.column);
        CHECK_INT(error.code, -EINVAL);
        CHECK_STR(error.text, cases[i].message);
        CHECK_INT(error.line, cases[i].line);
        CHECK_INT(error.column, cases[i].column);
        CHECK(!error.stopped);
    }
    /* a raw NUL byte is refused where jansson 2.14 skips it */
    struct fmt_json_error error = refused("[true\0]", 7);
    CHECK_INT(error.position, 5);
}

static void test_depth_is_limited(void)
{
    size_t depth = 100000;
    char *text = malloc(depth * 2);
    CHECK(text != NULL);
    if (!text)
        return;
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    struct fmt_json_error error = refused(text, depth * 2);
    CHECK_STR(error.text, "maximum parsing depth reached");

    /* 500 levels are fine */
    memset(text, '[', 500);
    memset(text + 500, ']', 500);
    struct fmt_json_error ok_error;
    json_t *ok = fmt_json_parse(text, 1000, &ok_error);
    CHECK(ok != NULL);
    json_decref(ok);
    free(text);
}

struct streamed {
    size_t calls;
    size_t stop_at;           /* 0: never stop */
    char keys[64];
};

static int take_member(void *ctx, const char *key, size_t key_len,
                       json_t *value)
{
    struct streamed *seen = ctx;
    seen->calls++;
    strncat(seen->keys, key, key_len);
    CHECK(json_is_object(value) || json_is_integer(value));
    return seen->calls == seen->stop_at ? -E2BIG : 0;
}

static void test_streamed_member(void)
{
    const char *text = "{\"bucket\":\"b\",\"objects\":{\"x\":{},\"y\":2,\"x\":3},"
                       "\"n\":{\"objects\":{\"deep\":1}}}";
    struct fmt_json_error error;
    struct streamed seen = {0};
    json_t *root = fmt_json_parse_streamed(text, strlen(text), "objects",
                                           take_member, &seen, &error);

    CHECK(root != NULL);
    CHECK_INT(seen.calls, 3);          /* each member as written */
    CHECK_STR(seen.keys, "xyx");
    CHECK_INT(json_object_size(json_object_get(root, "objects")), 0);
    CHECK_STR(json_string_value(json_object_get(root, "bucket")), "b");
    /* only the top level's member is streamed */
    CHECK_INT(json_integer_value(json_object_get(
                  json_object_get(json_object_get(root, "n"), "objects"),
                  "deep")), 1);
    json_decref(root);

    /* the member function stops it with its own code */
    struct streamed stop = {.stop_at = 2};
    root = fmt_json_parse_streamed(text, strlen(text), "objects", take_member,
                                   &stop, &error);
    CHECK(root == NULL);
    CHECK(error.stopped);
    CHECK_INT(error.code, -E2BIG);
    CHECK_INT(stop.calls, 2);

    /* "objects" that is not an object is kept as it is */
    text = "{\"objects\":[1]}";
    struct streamed none = {0};
    root = fmt_json_parse_streamed(text, strlen(text), "objects", take_member,
                                   &none, &error);
    CHECK(json_is_array(json_object_get(root, "objects")));
    CHECK_INT(none.calls, 0);
    json_decref(root);
}

/* fmt_json_parse_flat: "key=kind:text" of each member, in order. */
struct flat_seen {
    char text[512];
    int stop_at;
    int calls;
};

static int take_flat(void *ctx, const char *key, size_t key_len,
                     const char *bytes, size_t len, json_t *value)
{
    struct flat_seen *seen = ctx;
    size_t used = strlen(seen->text);
    char *dumped = value ? json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(seen->text + used, sizeof(seen->text) - used, "%.*s=%s:%.*s;",
             (int)key_len, key, value ? "v" : "s", value ? (int)strlen(dumped) : (int)len,
             value ? dumped : bytes);
    free(dumped);
    return ++seen->calls == seen->stop_at ? -E2BIG : 0;
}

static void test_flat_members(void)
{
    const char *text = " {\"id\":\"a\\nb\",\"n\":-3,\"o\":{\"k\":[1,null]},"
                       "\"id\":\"\",\"z\":null} ";
    struct fmt_json_error error;
    struct flat_seen seen = {0};

    CHECK_INT(fmt_json_parse_flat(text, strlen(text), take_flat, &seen, &error), 0);
    CHECK_STR(seen.text, "id=s:a\nb;n=v:-3;o=v:{\"k\":[1,null]};id=s:;z=v:null;");
    struct flat_seen empty = {0};
    CHECK_INT(fmt_json_parse_flat("{}", 2, take_flat, &empty, &error), 0);
    CHECK_INT(empty.calls, 0);
    /* not an object: 1, nothing called */
    CHECK_INT(fmt_json_parse_flat(" [1]", 4, take_flat, &empty, &error), 1);
    CHECK_INT(fmt_json_parse_flat("", 0, take_flat, &empty, &error), 1);
    CHECK_INT(empty.calls, 0);
    /* bad objects fail where and as fmt_json_parse fails */
    static const char *const bad[] = {
        "{\"a\":1,}", "{\"a\" 1}", "{\"a\":\"x}", "{\"a\":tru}", "{\"a\":1} x",
        "{\"a\":\"\x01\"}", "{\"a\\u0000\":1}", "{\"a\":[1,2}", "{1:2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct flat_seen any = {0};
        struct fmt_json_error flat_error;
        CHECK_INT(fmt_json_parse_flat(bad[i], strlen(bad[i]), take_flat, &any,
                                      &flat_error), -1);
        struct fmt_json_error tree_error = refused(bad[i], strlen(bad[i]));
        CHECK_INT(flat_error.position, tree_error.position);
        CHECK_STR(flat_error.text, tree_error.text);
        CHECK_INT(flat_error.code, -EINVAL);
    }
    /* the member function stops it with its own code */
    struct flat_seen stop = {.stop_at = 2};
    CHECK_INT(fmt_json_parse_flat(text, strlen(text), take_flat, &stop, &error), -1);
    CHECK(error.stopped);
    CHECK_INT(error.code, -E2BIG);
    CHECK_INT(stop.calls, 2);
}

/* Every allocation failing in turn, jansson's too (through the hook):
 * -ENOMEM each time, never a crash or a leak, then success. */
static void test_out_of_memory(void)
{
    const char *text = "{\"a\":[\"x\\n\",{\"b\":1.5}],\"c\":\"long enough\"}";
    bool done = false;

    json_set_alloc_funcs(s3m_malloc, free);
    for (size_t n = 1; n < 200 && !done; n++) {
        struct fmt_json_error error;
        s3m_alloc_fail_after(n, false);
        json_t *value = fmt_json_parse(text, strlen(text), &error);
        s3m_alloc_fail_after(0, false);
        if (value) {
            done = true;
            json_decref(value);
        } else {
            CHECK_INT(error.code, -ENOMEM);
        }
    }
    CHECK(done);
    json_set_alloc_funcs(malloc, free);
}

int main(void)
{
    RUN(test_values_match_jansson);
    RUN(test_strings_decode);
    RUN(test_string_scan_bounds);
    RUN(test_big_integer_becomes_real);
    RUN(test_refusals);
    RUN(test_depth_is_limited);
    RUN(test_streamed_member);
    RUN(test_flat_members);
    RUN(test_out_of_memory);
    return CHECK_EXIT();
}
