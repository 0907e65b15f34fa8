/*
 * load.c - reads an s3db.js MemoryClient save file into a new store.
 *
 * Design note: the file is mapped (s3m_mapped_open: no copy, and a file
 * that shrinks meanwhile fails the load instead of killing the daemon) or
 * read whole, and parsed in one pass (json_read.c);
 * each member of "objects" comes member by member into a struct
 * load_fields, with no jansson tree for the object: the body's base64 is
 * decoded straight from the text into a reused buffer. At the object's
 * closing brace it is checked and put into a new store; the first bad
 * object (or a JSON error, with its line and column) stops the load and
 * the new store is freed, so the caller's store is never touched by a bad
 * file.
 * Every field is checked for its type; bodies against "size" and against
 * plain-MD5 etags (the MD5 is then handed to the store, which needn't hash
 * the body again). Loading over a store (s3m_format_load_over), a decoded
 * body with the same bytes as that store's object at the key is shared
 * instead of copied: reloading a state costs no new body memory, and a
 * body whose MD5 is cached needs no hashing.
 */
#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct load_state {
    const char *path;
    struct s3m_store *store;
    struct s3m_store *current;      /* borrowed, may be NULL: bodies to share */
    const struct s3m_store_config *config;
    struct s3m_error *err;
    struct fmt_verifier *verifier;  /* owned, may be NULL: check inline */
    struct load_fields *fields;     /* owned: the object being parsed */
    size_t objects;
    uint64_t body_bytes;
};

/* An etag that is not its body's MD5; etag is cut at 40 characters. */
#define ETAG_MISMATCH "etag %.40s does not match the body (md5 %s)"

/* Fails the load naming the object: "cannot load 'P': object 'K': ...".
 * Returns the negative errno. */
__attribute__((format(printf, 4, 0)))
static int object_failure(struct load_state *state, const char *shown, int code,
                          const char *format, va_list args)
{
    char detail[384];
    vsnprintf(detail, sizeof(detail), format, args);
    return s3m_error_set(state->err, code, "cannot load '%s': object '%s': %s",
                         state->path, shown, detail);
}

__attribute__((format(printf, 4, 5)))
static int object_failure_of(struct load_state *state, const char *shown,
                             int code, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int rc = object_failure(state, shown, code, format, args);
    va_end(args);
    return rc;
}

/* Fails the load with the verifier's first mismatch when it found one:
 * that object came before anything the parser is at. Returns -EINVAL, or 0
 * when every body checked so far matched (the verifier is done then). */
static int verified_mismatch(struct load_state *state)
{
    struct fmt_verify_failure failure;
    if (!state->verifier || !fmt_verifier_finish(state->verifier, &failure))
        return 0;
    return object_failure_of(state, failure.shown, EINVAL, ETAG_MISMATCH,
                             failure.etag, failure.actual);
}

/* object_failure, unless the verifier found an earlier mismatch: that one
 * is reported instead, as a check in file order would have. */
__attribute__((format(printf, 4, 5)))
static int object_error(struct load_state *state, const char *shown, int code,
                        const char *format, ...)
{
    int rc = verified_mismatch(state);
    if (rc)
        return rc;
    va_list args;
    va_start(args, format);
    rc = object_failure(state, shown, code, format, args);
    va_end(args);
    return rc;
}

/* One member of an object as the parser gave it: a non-string value, or a
 * string's bytes copied into text. Absent: neither. */
struct load_value {
    json_t *value;                 /* owned reference, or NULL */
    bool is_string;                /* text holds the string */
    char *text;                    /* owned, reused from object to object */
    size_t len, cap;
};

static void value_clear(struct load_value *v)
{
    json_decref(v->value);
    v->value = NULL;
    v->is_string = false;
}

/* Takes the parser's value (bytes when value is NULL). 0 or -ENOMEM. */
static int value_set(struct load_value *v, const char *bytes, size_t len,
                     json_t *value)
{
    value_clear(v);
    if (value) {
        v->value = json_incref(value);
        return 0;
    }
    char *text = s3m_grow(v->text, &v->cap, len + 1);
    if (!text)
        return -ENOMEM;
    v->text = text;
    memcpy(v->text, bytes, len);
    v->text[len] = '\0';
    v->len = len;
    v->is_string = true;
    return 0;
}

static bool value_absent(const struct load_value *v)
{
    return !v->is_string && (!v->value || json_is_null(v->value));
}

/* A string member or null/absent. Returns 0 and sets *text (NULL when
 * absent or null), or 1 when it has another type or holds a NUL and
 * text_only is set. */
static int optional_string(const struct load_value *v, bool text_only,
                           const struct load_value **text)
{
    *text = NULL;
    if (value_absent(v))
        return 0;
    if (!v->is_string || (text_only && memchr(v->text, '\0', v->len)))
        return 1;
    *text = v;
    return 0;
}

/* Integer member in [0, max], or absent/null (*present false). */
static int optional_integer(const struct load_value *v, json_int_t max,
                            bool *present, json_int_t *number)
{
    *present = false;
    if (value_absent(v))
        return 0;
    if (v->is_string || !json_is_integer(v->value) ||
        json_integer_value(v->value) < 0 || json_integer_value(v->value) > max)
        return 1;
    *present = true;
    *number = json_integer_value(v->value);
    return 0;
}

/* The members load reads besides "body", by their place in
 * load_fields.values. */
enum load_field {
    F_SIZE, F_ETAG, F_MODIFIED, F_TYPE, F_METADATA, F_LENGTH, F_ENCODING,
    F_KEY64, F_EXACT, F_MODE, F_UID, F_GID, F_COUNT
};

#define FIELD(id, text) [id] = {text, sizeof(text) - 1}
static const struct {
    const char *name;
    size_t len;
} field_names[F_COUNT] = {
    FIELD(F_SIZE, "size"), FIELD(F_ETAG, "etag"),
    FIELD(F_MODIFIED, "lastModified"), FIELD(F_TYPE, "contentType"),
    FIELD(F_METADATA, "metadata"), FIELD(F_LENGTH, "contentLength"),
    FIELD(F_ENCODING, "contentEncoding"), FIELD(F_KEY64, "keyBase64"),
    FIELD(F_EXACT, "metadataBase64"), FIELD(F_MODE, "mode"),
    FIELD(F_UID, "uid"), FIELD(F_GID, "gid"),
};
#undef FIELD

/* The members of one object, collected while it is parsed. The body is
 * decoded as soon as it is read, into a buffer reused from object to
 * object (the store copies it). */
struct load_fields {
    char shown[FMT_SHOWN_MAX];     /* the object's JSON key, for messages */
    const char *json_key;          /* borrowed from the parser until end */
    size_t json_key_len;
    struct load_value values[F_COUNT];
    bool has_body;
    bool body_is_string;
    int body_rc;                   /* 0, -EINVAL (not base64) or -ENOMEM */
    unsigned char *body;           /* owned, reused */
    size_t body_len, body_cap;
};

static struct load_value *field_slot(struct load_fields *f, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < F_COUNT; i++)
        if (field_names[i].len == len &&
            memcmp(field_names[i].name, name, len) == 0)
            return &f->values[i];
    return NULL;
}

static void fields_clear(struct load_fields *f)
{
    for (size_t i = 0; i < F_COUNT; i++)
        value_clear(&f->values[i]);
    f->has_body = false;
}

static void fields_free(struct load_fields *f)
{
    fields_clear(f);
    for (size_t i = 0; i < F_COUNT; i++)
        free(f->values[i].text);
    free(f->body);
}

/* New bytes of base64 text, or NULL: -EINVAL (bad) or -ENOMEM. */
static unsigned char *decode_base64(const char *text, size_t text_len,
                                    size_t *len, int *rc)
{
    unsigned char *bytes = s3m_malloc(text_len / 4 * 3 + 4);

    if (!bytes) {
        *rc = -ENOMEM;
        return NULL;
    }
    if (s3m_base64_decode(text, text_len, bytes, len)) {
        free(bytes);
        *rc = -EINVAL;
        return NULL;
    }
    bytes[*len] = '\0';
    *rc = 0;
    return bytes;
}

/* Decodes the body's base64 into f->body; the outcome goes in body_rc. */
static void take_body(struct load_fields *f, const char *text, size_t len)
{
    unsigned char *body = s3m_grow(f->body, &f->body_cap, len / 4 * 3 + 4);

    f->body_rc = 0;
    if (!body) {
        f->body_rc = -ENOMEM;
        return;
    }
    f->body = body;
    if (s3m_base64_decode(text, len, f->body, &f->body_len))
        f->body_rc = -EINVAL;
}

/* Metadata from "metadataBase64" ([[name64, value64], ...]) onto *meta
 * (private: built in place). */
static int exact_metadata(struct load_state *state, const char *shown,
                          const json_t *pairs, struct s3m_meta **meta)
{
    size_t index;
    json_t *pair;

    if (!json_is_array(pairs))
        return object_error(state, shown, EINVAL,
                            "\"metadataBase64\" is not an array");
    json_array_foreach(pairs, index, pair) {
        const json_t *name64 = json_array_get(pair, 0);
        const json_t *value64 = json_array_get(pair, 1);
        unsigned char *name, *value;
        size_t name_len, value_len;
        int rc;

        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            !json_is_string(name64) || !json_is_string(value64))
            return object_error(state, shown, EINVAL,
                                "\"metadataBase64\" entry %zu is not a pair "
                                "of strings", index);
        name = decode_base64(json_string_value(name64),
                             json_string_length(name64), &name_len, &rc);
        if (!name)
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"metadataBase64\" entry %zu is not base64",
                               index);
        value = decode_base64(json_string_value(value64),
                              json_string_length(value64), &value_len, &rc);
        if (!value) {
            free(name);
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"metadataBase64\" entry %zu is not base64",
                               index);
        }
        if (name_len == 0 || memchr(name, '\0', name_len)) {
            free(name);
            free(value);
            return object_error(state, shown, EINVAL,
                                "\"metadataBase64\" entry %zu has an empty "
                                "name or one with NUL", index);
        }
        rc = s3m_meta_set(*meta, (const char *)name, value, value_len);
        free(name);
        free(value);
        if (rc)
            return object_error(state, shown, ENOMEM, "out of memory");
    }
    return 0;
}

/* Metadata from the "metadata" object onto *meta. */
static int plain_metadata(struct load_state *state, const char *shown,
                          json_t *metadata, struct s3m_meta *meta)
{
    const char *name;
    size_t name_len;
    json_t *value;

    json_object_keylen_foreach(metadata, name, name_len, value) {
        char name_shown[128];
        if (!json_is_string(value))
            return object_error(state, shown, EINVAL,
                                "metadata '%s' is not a string",
                                fmt_key_for_message(name, name_len,
                                                    name_shown));
        if (name_len == 0 || strlen(name) != name_len)
            return object_error(state, shown, EINVAL,
                                "a metadata name is empty or holds NUL");
        if (s3m_meta_set(meta, name, json_string_value(value),
                         json_string_length(value)))
            return object_error(state, shown, ENOMEM, "out of memory");
    }
    return 0;
}

/* Builds the object's metadata (content type and encoding included). */
static int build_metadata(struct load_state *state, struct load_fields *f,
                          struct s3m_meta **out)
{
    const struct load_value *type, *encoding;
    const char *shown = f->shown;
    json_t *metadata = f->values[F_METADATA].value, *exact = f->values[F_EXACT].value;
    struct s3m_meta *meta;
    int rc = 0;

    if (optional_string(&f->values[F_TYPE], true, &type))
        return object_error(state, shown, EINVAL,
                            "\"contentType\" is not a string");
    if (optional_string(&f->values[F_ENCODING], true, &encoding))
        return object_error(state, shown, EINVAL,
                            "\"contentEncoding\" is not a string");
    if (f->values[F_METADATA].is_string ||
        (metadata && !json_is_null(metadata) && !json_is_object(metadata)))
        return object_error(state, shown, EINVAL,
                            "\"metadata\" is not an object");
    if (exact && json_is_null(exact))
        exact = NULL;

    meta = s3m_meta_with_type(NULL, type ? type->text : NULL,
                              encoding ? encoding->text : NULL);
    if (!meta)
        return object_error(state, shown, ENOMEM, "out of memory");
    if (f->values[F_EXACT].is_string)
        rc = object_error(state, shown, EINVAL,
                          "\"metadataBase64\" is not an array");
    else if (exact)
        rc = exact_metadata(state, shown, exact, &meta);
    else if (json_is_object(metadata))
        rc = plain_metadata(state, shown, metadata, meta);
    if (rc) {
        s3m_meta_unref(meta);
        return rc;
    }
    *out = meta;
    return 0;
}

/* True when etag (possibly in double quotes) is 32 hex digits; fills md5. */
static bool plain_md5_etag(const struct load_value *etag, unsigned char md5[16])
{
    const char *text = etag->text;
    size_t len = etag->len;
    char hex[33];

    if (len == 34 && text[0] == '"' && text[33] == '"') {
        text++;
        len -= 2;
    }
    if (len != 32)
        return false;
    memcpy(hex, text, 32);
    hex[32] = '\0';
    return s3m_md5_parse_hex(hex, md5);
}

/* Hands the body just stored under key to the verifier, with the claimed
 * MD5. 0, -ENOMEM (reported), or the verifier's mismatch (reported). */
static int defer_check(struct load_state *state, const char *key,
                       const unsigned char claimed[16], const char *shown,
                       const struct load_value *etag)
{
    int rc = 0;
    /* open, not get: no request counted or logged for the loader's look */
    struct s3m_object *obj = s3m_store_open(state->store, key, &rc);
    struct s3m_body *body = obj ? s3m_object_body(state->store, obj) : NULL;
    s3m_object_unref(obj);
    if (!body)
        return object_error(state, shown, ENOMEM, "out of memory");
    char etag_text[41];
    snprintf(etag_text, sizeof(etag_text), "%s", etag->text);
    if (fmt_verifier_add(state->verifier, body, claimed, shown, etag_text) != 0)
        return verified_mismatch(state);
    return 0;
}

/* The object's key: from "keyBase64" (new bytes in *exact_key) or its JSON
 * key; checked. 0 or the reported error. */
static int object_key(struct load_state *state, struct load_fields *f,
                      unsigned char **exact_key, const char **key,
                      size_t *key_len)
{
    const struct load_value *key64;
    const char *shown = f->shown;
    int rc;

    *key = f->json_key;
    *key_len = f->json_key_len;
    if (optional_string(&f->values[F_KEY64], false, &key64))
        return object_error(state, shown, EINVAL,
                            "\"keyBase64\" is not a string");
    if (key64) {
        *exact_key = decode_base64(key64->text, key64->len, key_len, &rc);
        if (!*exact_key)
            return rc == -ENOMEM
                ? object_error(state, shown, ENOMEM, "out of memory")
                : object_error(state, shown, EINVAL,
                               "\"keyBase64\" is not base64");
        *key = (const char *)*exact_key;
    }
    if (*key_len == 0 || *key_len > S3M_KEY_MAX || memchr(*key, '\0', *key_len))
        return object_error(state, shown, EINVAL,
                            *key_len == 0 ? "the key is empty"
                            : *key_len > S3M_KEY_MAX
                                ? "the key is longer than 1024 bytes"
                                : "the key holds a NUL byte");
    return 0;
}

/* The body, checked against "size". 0 or the reported error. */
static int object_body(struct load_state *state, struct load_fields *f)
{
    const char *shown = f->shown;
    json_int_t size = 0, length = 0;
    bool has_size, has_length;

    if (!f->has_body || !f->body_is_string)
        return object_error(state, shown, EINVAL,
                            f->has_body ? "\"body\" is not a string"
                                        : "\"body\" is missing");
    if (f->body_rc)
        return f->body_rc == -ENOMEM
            ? object_error(state, shown, ENOMEM, "out of memory")
            : object_error(state, shown, EINVAL, "\"body\" is not valid base64");
    if (optional_integer(&f->values[F_SIZE], INT64_MAX, &has_size, &size) ||
        optional_integer(&f->values[F_LENGTH], INT64_MAX, &has_length, &length))
        return object_error(state, shown, EINVAL,
                            "\"size\" or \"contentLength\" is not a "
                            "non-negative integer");
    if (has_size && (uint64_t)size != f->body_len)
        return object_error(state, shown, EINVAL,
                            "the body has %zu bytes but \"size\" says %lld",
                            f->body_len, (long long)size);
    return 0;
}

/* Mode and owner into attrs. 0 or the reported error. */
static int object_owner(struct load_state *state, struct load_fields *f,
                        struct s3m_put_attrs *attrs)
{
    json_int_t mode = 0, uid = 0, gid = 0;
    bool has_mode, has_uid, has_gid;

    if (optional_integer(&f->values[F_MODE], 07777, &has_mode, &mode) ||
        optional_integer(&f->values[F_UID], UINT32_MAX - 1, &has_uid, &uid) ||
        optional_integer(&f->values[F_GID], UINT32_MAX - 1, &has_gid, &gid))
        return object_error(state, f->shown, EINVAL,
                            "\"mode\", \"uid\" or \"gid\" is out of range or "
                            "not an integer");
    /* with a file-type bit set, the store takes the bits as given, even 0 */
    attrs->mode = has_mode ? (uint32_t)(S_IFREG | mode) : 0;
    attrs->has_owner = has_uid || has_gid;
    attrs->uid = has_uid ? (uint32_t)uid : state->config->default_uid;
    attrs->gid = has_gid ? (uint32_t)gid : state->config->default_gid;
    return 0;
}

/* "lastModified" into attrs. 0 or the reported error. */
static int object_time(struct load_state *state, struct load_fields *f,
                       struct s3m_put_attrs *attrs)
{
    const struct load_value *modified;

    if (optional_string(&f->values[F_MODIFIED], false, &modified))
        return object_error(state, f->shown, EINVAL,
                            "\"lastModified\" is not a string");
    if (!modified)
        return 0;
    if (memchr(modified->text, '\0', modified->len) ||
        s3m_time_parse_iso(modified->text, &attrs->mtime_ns))
        return object_error(state, f->shown, EINVAL,
                            "\"lastModified\" is not an ISO 8601 time");
    if (attrs->mtime_ns == 0)
        attrs->mtime_ns = 1;   /* 0 would mean "now" to the store */
    return 0;
}

/* Stores the object under key (NUL-ended: object_key checked that it
 * holds no NUL); the etag's claim is handed to the verifier when deferred.
 * 0 or the reported error. */
static int object_store(struct load_state *state, struct load_fields *f,
                        const char *key, struct s3m_put_attrs *attrs,
                        const unsigned char *claimed, bool deferred,
                        struct s3m_body *shared)
{
    const char *shown = f->shown;
    int rc = shared
        ? s3m_store_put_body(state->store, key, shared, attrs, S3M_PUT_CREATE)
        : s3m_store_put(state->store, key, f->body, f->body_len, attrs,
                        S3M_PUT_CREATE);

    if (rc == 0) {
        state->objects++;
        state->body_bytes += f->body_len;
        if (deferred)
            rc = defer_check(state, key, claimed, shown, &f->values[F_ETAG]);
    } else if (rc == -EEXIST) {
        rc = object_error(state, shown, EINVAL, "the key appears twice");
    } else {
        rc = object_error(state, shown, rc, "cannot store it: %s",
                          s3m_format_errno_text(rc));
    }
    return rc;
}

/* The body of the current store's object at key when it holds the very
 * bytes just decoded (new reference), else NULL. */
static struct s3m_body *shared_body(struct load_state *state,
                                    const struct load_fields *f,
                                    const char *key, size_t key_len)
{
    if (!state->current || f->body_len == 0)
        return NULL;
    struct s3m_body *body = s3m_store_peek_body(state->current, key, key_len);
    if (body && !s3m_body_equals(body, f->body, f->body_len)) {
        s3m_body_unref(body);
        body = NULL;
    }
    return body;
}

/* Checks and stores the object whose members f holds, in the order of the
 * checks (so the first error reported does not depend on member order). */
static int load_object(struct load_state *state, struct load_fields *f)
{
    const struct load_value *etag;
    unsigned char *exact_key = NULL, md5[16], claimed[16];
    const char *key;
    size_t key_len;
    struct s3m_meta *meta = NULL;
    struct s3m_body *shared = NULL;
    struct s3m_put_attrs attrs = {0};
    char etag_hex[33];
    int rc;

    rc = object_key(state, f, &exact_key, &key, &key_len);
    if (rc == 0)
        rc = object_body(state, f);
    if (rc == 0)
        rc = object_owner(state, f, &attrs);
    if (rc)
        goto out;
    if (optional_string(&f->values[F_ETAG], false, &etag)) {
        rc = object_error(state, f->shown, EINVAL, "\"etag\" is not a string");
        goto out;
    }
    bool has_claim = etag && plain_md5_etag(etag, claimed);
    /* a body shared with the current store may know its MD5 already */
    shared = shared_body(state, f, key, key_len);
    bool known = shared && s3m_body_cached_md5(shared, md5);
    /* with a verifier, the claim is checked on its thread once stored */
    bool deferred = has_claim && state->verifier && f->body_len > 0 && !known;
    if (!deferred && !known) {
        struct s3m_md5 hash;
        s3m_md5_init(&hash);
        s3m_md5_update(&hash, f->body, f->body_len);
        s3m_md5_final(&hash, md5);
    }
    if (has_claim && !deferred && memcmp(claimed, md5, 16) != 0) {
        s3m_md5_hex(md5, etag_hex);
        rc = object_error(state, f->shown, EINVAL, ETAG_MISMATCH, etag->text,
                          etag_hex);
        goto out;
    }
    rc = object_time(state, f, &attrs);
    if (rc == 0)
        rc = build_metadata(state, f, &meta);
    if (rc)
        goto out;
    attrs.meta = meta;
    attrs.md5 = deferred ? NULL : md5; /* deferred: the checker caches it */
    rc = object_store(state, f, key, &attrs, claimed, deferred, shared);
out:
    s3m_body_unref(shared);
    s3m_meta_unref(meta);
    free(exact_key);
    return rc;
}

/* ---- the parser's callbacks (fmt_json_parse_streamed_flat) */

static int object_begin(void *ctx, const char *key, size_t key_len)
{
    struct load_state *state = ctx;
    struct load_fields *f = state->fields;

    fields_clear(f);
    f->json_key = key;
    f->json_key_len = key_len;
    fmt_key_for_message(key, key_len, f->shown);
    return 0;
}

static int object_field(void *ctx, const char *name, size_t name_len,
                        const char *bytes, size_t len, json_t *value)
{
    struct load_state *state = ctx;
    struct load_fields *f = state->fields;
    struct load_value *slot;

    if (name_len == 4 && memcmp(name, "body", 4) == 0) {
        f->has_body = true;
        f->body_is_string = value == NULL;
        if (!value)
            take_body(f, bytes, len);
        return 0;
    }
    slot = field_slot(f, name, name_len);
    if (slot && value_set(slot, bytes, len, value))
        return object_error(state, f->shown, ENOMEM, "out of memory");
    return 0;
}

static int object_end(void *ctx)
{
    struct load_state *state = ctx;
    int rc = load_object(state, state->fields);

    fields_clear(state->fields);
    return rc;
}

static int object_other(void *ctx, const char *key, size_t key_len,
                        json_t *value)
{
    char shown[FMT_SHOWN_MAX];

    (void)value;  /* an object member would have gone to object_begin */
    fmt_key_for_message(key, key_len, shown);
    return object_error(ctx, shown, EINVAL, "not a JSON object");
}

/* Checks the top level: an object with "objects" an object, and the other
 * s3db.js fields, when present, of their types. */
static int check_top_level(struct load_state *state, const json_t *root)
{
    const json_t *value;

    if (!json_is_object(root))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': not a save file: the top "
                             "level is not a JSON object", state->path);
    value = json_object_get(root, "objects");
    if (!value)
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': not a save file: \"objects\" "
                             "is missing", state->path);
    if (!json_is_object(value))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': \"objects\" is not an object",
                             state->path);
    value = json_object_get(root, "objectCount");
    if (value && !json_is_null(value) && !json_is_integer(value))
        return s3m_error_set(state->err, EINVAL,
                             "cannot load '%s': \"objectCount\" is not an "
                             "integer", state->path);
    static const char *const strings[] = {"timestamp", "bucket"};
    for (size_t i = 0; i < 2; i++) {
        value = json_object_get(root, strings[i]);
        if (value && !json_is_null(value) && !json_is_string(value))
            return s3m_error_set(state->err, EINVAL,
                                 "cannot load '%s': \"%s\" is not a string",
                                 state->path, strings[i]);
    }
    return 0;
}

int s3m_format_load(const char *path, const struct s3m_store_config *config,
                    struct s3m_store **out, struct s3m_load_report *report,
                    struct s3m_error *err)
{
    return s3m_format_load_over(path, config, NULL, out, report, err);
}

int s3m_format_load_over(const char *path,
                         const struct s3m_store_config *config,
                         struct s3m_store *current, struct s3m_store **out,
                         struct s3m_load_report *report,
                         struct s3m_error *err)
{
    static const struct s3m_store_config defaults;
    static const struct fmt_json_flat_stream object_fns = {
        .begin = object_begin, .field = object_field, .end = object_end,
        .other = object_other};
    struct load_fields fields = {0};
    struct load_state state = {.path = path, .err = err, .fields = &fields,
                               .current = current,
                               .config = config ? config : &defaults};
    struct fmt_json_error error;
    json_t *root;
    bool read_failed;
    FILE *file;
    int rc;

    file = fopen(path, "rbe");
    if (!file) {
        rc = -errno;
        return s3m_error_set(err, rc, "cannot read '%s': %s", path,
                             s3m_format_errno_text(rc));
    }
    /* mapped from the page cache, or read whole; parsed from memory */
    struct s3m_mapped mapped;
    size_t text_len = 0;
    char *text = NULL;
    rc = s3m_mapped_open(fileno(file), &mapped);
    if (rc == -ENODEV)
        rc = fmt_read_whole(file, &text, &text_len);
    fclose(file);
    read_failed = rc != 0;
    if (read_failed)
        return s3m_error_set(err, rc, "cannot read '%s': %s", path,
                             s3m_format_errno_text(rc));
    if (mapped.data)
        text_len = mapped.len;
    state.store = s3m_store_new(state.config);
    if (!state.store) {
        s3m_mapped_close(&mapped);
        free(text);
        return s3m_error_set(err, ENOMEM, "cannot load '%s': out of memory",
                             path);
    }
    /* objects are stored as they are parsed, one at a time; their bodies are
     * checked against their etags on a second thread meanwhile */
    state.verifier = fmt_verifier_start();
    root = fmt_json_parse_streamed_flat(mapped.data ? mapped.data : text,
                                        text_len, "objects", &object_fns,
                                        &state, &error);
    bool changed = s3m_mapped_damaged(&mapped);
    s3m_mapped_close(&mapped);
    free(text);
    fields_free(&fields);
    if (changed) {
        fmt_verifier_free(state.verifier);
        json_decref(root);
        s3m_store_free(state.store);
        return s3m_error_set(err, EIO, "cannot load '%s': the file shrank "
                             "while it was read", path);
    }
    rc = verified_mismatch(&state);
    fmt_verifier_free(state.verifier);
    state.verifier = NULL;
    if (rc) {
        json_decref(root);
        s3m_store_free(state.store);
        return rc;
    }
    if (!root) {
        s3m_store_free(state.store);
        if (error.stopped)
            return error.code;
        if (error.code == -ENOMEM)
            return s3m_error_set(err, ENOMEM, "cannot load '%s': out of memory",
                                 path);
        return s3m_error_set(err, EINVAL,
                             "cannot load '%s': not valid JSON at line %d, "
                             "column %d: %s", path, error.line, error.column,
                             error.text);
    }
    rc = check_top_level(&state, root);
    if (rc) {
        s3m_store_free(state.store);
        goto out;
    }
    *out = state.store;
    if (report) {
        report->objects = state.objects;
        report->body_bytes = state.body_bytes;
    }
out:
    json_decref(root);
    return rc;
}
