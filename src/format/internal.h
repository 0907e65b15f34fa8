/*
 * internal.h - helpers shared by the files of src/format only: a byte sink that
 * writes to a FILE or a gzip stream and remembers its first error, JSON
 * output that matches JSON.stringify byte for byte, UTF-8 stepping, and the
 * one place where jansson's and zlib's errors become errno values.
 */
#ifndef S3MEM_FORMAT_INTERNAL_H
#define S3MEM_FORMAT_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <zlib.h>

#include "s3mem/format.h"

/* Where a writer's bytes go: a file or a gzip stream (exactly one is set).
 * Small writes are staged and handed over in pieces (stdio copies a write
 * of up to 20 bytes one byte at a time, and locks the file for each): call
 * fmt_out_flush before closing the sink. The stage is the struct's own 8
 * KiB unless fmt_out_stage gave a bigger one. Writing after an error does
 * nothing; error holds the first positive errno. */
struct fmt_out {
    FILE *file;
    gzFile gz;
    uint64_t bytes;           /* bytes given to the sink (before gzip) */
    int error;
    size_t staged_len;
    char *stage;              /* borrowed from fmt_out_stage's caller;
                               * NULL: staged[] */
    size_t stage_cap;         /* bytes at stage */
    char staged[8192];
};

/* Stages in cap bytes at buffer (borrowed: it must outlive the writing)
 * instead of the struct's 8 KiB; before anything is written. */
void fmt_out_stage(struct fmt_out *out, char *buffer, size_t cap);
/* Room for len bytes written in place, or NULL (after an error, or len
 * larger than the stage); fmt_out_commit then counts the bytes used. */
char *fmt_out_reserve(struct fmt_out *out, size_t len);
void fmt_out_commit(struct fmt_out *out, size_t len);
/* Writes value in decimal. */
void fmt_out_u64(struct fmt_out *out, uint64_t value);

void fmt_out_write(struct fmt_out *out, const void *data, size_t len);
/* Hands the staged bytes to the sink; returns the first error (0). */
int fmt_out_flush(struct fmt_out *out);
void fmt_out_text(struct fmt_out *out, const char *text);
void fmt_out_printf(struct fmt_out *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* How to write bytes that are not UTF-8 inside a JSON string. */
enum fmt_bad_utf8 {
    FMT_BAD_UTF8_HEX,         /* each bad byte as the text \xNN */
    FMT_BAD_UTF8_REPLACE,     /* each bad byte as U+FFFD (as Node does) */
};

/* 1 for the bytes that stand for themselves inside a JSON string: printable
 * ASCII except '"' and '\\'. Escapes, control bytes and UTF-8 sequences
 * (>= 0x80) take the slow paths. */
extern const unsigned char fmt_json_plain[256];

/* True when one of the 8 bytes of w is outside printable ASCII (below 0x20
 * or above 0x7e). */
static inline bool fmt_word_has_unprintable(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    /* a byte below 0x20 borrows into its high bit, 0x7f and up carry or
     * have it; a borrow may also flag the byte after, which only makes the
     * caller look closer */
    return (((w - ones * 0x20) | (w + ones) | w) & highs) != 0;
}

/* How many bytes from the start of text (len bytes) are plain: checked 16
 * at a time with SSE2 where the compiler has it, else 8 at a time, then
 * byte by byte. */
size_t fmt_json_plain_span(const unsigned char *text, size_t len);

/* Writes bytes as a quoted JSON string, escaped as JSON.stringify does.
 * Returns true when the bytes were valid UTF-8 (written exactly). */
bool fmt_out_json_string(struct fmt_out *out, const char *text, size_t len,
                         enum fmt_bad_utf8 bad);

/* Writes a jansson value as compact JSON the way JSON.stringify would:
 * object members in JavaScript order (integer-like names ascending first,
 * then the others in insertion order), numbers as JavaScript prints them. */
void fmt_out_json_js(struct fmt_out *out, const json_t *value);

/* True when value is printable ASCII: s3db.js's metadataEncode keeps it as
 * it is. */
bool fmt_s3db_value_plain(const char *value, size_t len);

/* The length (1..4) of the valid UTF-8 sequence at text, or 0 when the
 * byte there starts none; sets *code_point. */
size_t fmt_utf8_next(const unsigned char *text, size_t len,
                     uint32_t *code_point);

/* Error text of a jansson failure mapped to errno: -ENOMEM when jansson ran
 * out of memory, else -EINVAL. */
int fmt_json_errno(const json_error_t *error);

/* Starts a thread on any CPU the process may use. Threads made by a request
 * worker, which is pinned to one CPU (fs/loop.c), would inherit its pin and
 * only take turns with it. 0 or a positive errno, as pthread_create. */
int fmt_thread_start(pthread_t *thread, void *(*main_fn)(void *), void *arg);

/* verify.c: checks bodies against the MD5 their etag claims on a second
 * thread (see there). Start returns NULL when no thread could be started
 * (then the loader checks inline). */
#define FMT_SHOWN_MAX 128
struct fmt_verify_failure {
    char shown[FMT_SHOWN_MAX];     /* the key, as fmt_key_for_message shows it */
    char etag[41];                 /* the claim as written, cut at 40 */
    char actual[33];               /* the body's MD5 in hex */
};
struct fmt_verifier;
struct fmt_verifier *fmt_verifier_start(void);
/* Queues body (a reference, taken; stored without an MD5) for a check
 * against claimed; waits while the queue is full. 0, or -1 when a mismatch
 * was found already (body released: stop). */
int fmt_verifier_add(struct fmt_verifier *verifier, struct s3m_body *body,
                     const unsigned char claimed[16], const char *shown,
                     const char *etag);
/* Waits for every queued check; true when one failed (*failure: the first). */
bool fmt_verifier_finish(struct fmt_verifier *verifier,
                         struct fmt_verify_failure *failure);
/* Finishes (when not done) and frees; accepts NULL. */
void fmt_verifier_free(struct fmt_verifier *verifier);

/* hasher.c: MD5s of a snapshot's bodies on a second thread, ahead of a
 * writer that goes through them in s3m_store_foreach order. Start returns
 * NULL when there is too little to hash or no thread (then the writer
 * hashes alone); at and stop accept NULL. The snapshot must outlive the
 * hasher (stop it first). */
struct fmt_hasher;
struct fmt_hasher *fmt_hasher_start(struct s3m_store *snapshot);
/* The writer reached object index (0-based, in foreach order). */
void fmt_hasher_at(struct fmt_hasher *hasher, size_t index);
/* Stops the thread and frees the hasher. */
void fmt_hasher_stop(struct fmt_hasher *hasher);

/* Why fmt_json_parse failed. */
struct fmt_json_error {
    int code;                 /* 0, -EINVAL (bad JSON) or -ENOMEM */
    size_t position;          /* byte offset of the problem */
    int line;                 /* 1-based */
    int column;               /* 1-based, in characters */
    char text[96];            /* what is wrong, e.g. "invalid escape" */
    bool stopped;             /* a member function stopped it; code is its
                               * return value */
};

/* Parses len bytes of JSON (any value, surrounded by white space only) into
 * a new jansson value (the caller decrefs it), or returns NULL with error
 * set. See json_read.c for how it differs from json_loadb. */
json_t *fmt_json_parse(const char *text, size_t len,
                       struct fmt_json_error *error);

/* Called with each member of a flat object, in order (a repeated name
 * comes again): a string value as its bytes (len bytes, valid for the call
 * only) with value NULL; any other value parsed, borrowed for the call.
 * Non-zero stops the parse. */
typedef int (*fmt_json_flat_fn)(void *ctx, const char *key, size_t key_len,
                                const char *bytes, size_t len, json_t *value);

/* Parses len bytes holding one JSON object member by member, without
 * building it: 0; 1 when the text does not start with '{' (parse it with
 * fmt_json_parse to learn what it is); -1 with error set, as
 * fmt_json_parse would set it (error->stopped when fn stopped it). */
int fmt_json_parse_flat(const char *text, size_t len, fmt_json_flat_fn fn,
                        void *ctx, struct fmt_json_error *error);

/* Called with each member of a streamed object; key (NUL-ended, key_len
 * bytes) and value are borrowed for the call. Non-zero stops the parse. */
typedef int (*fmt_json_member_fn)(void *ctx, const char *key, size_t key_len,
                                  json_t *value);

/* fmt_json_parse, except that when the top level is an object, the members
 * of its member named streamed (when that is an object) go to fn one at a
 * time and are not kept: the returned value holds streamed as {}. A huge
 * save file then never exists as one tree. When fn returns non-zero the
 * parse stops: NULL, error->stopped set and error->code = that value. */
json_t *fmt_json_parse_streamed(const char *text, size_t len,
                                const char *streamed, fmt_json_member_fn fn,
                                void *ctx, struct fmt_json_error *error);

/* How fmt_json_parse_streamed_flat hands over the streamed object's
 * members: one whose value is an object as begin (its key, NUL-ended,
 * valid until end), field for each of its members (as
 * fmt_json_parse_flat's fn), then end; any other to other. Non-zero from
 * any of them stops the parse with that code. */
struct fmt_json_flat_stream {
    int (*begin)(void *ctx, const char *key, size_t key_len);
    fmt_json_flat_fn field;
    int (*end)(void *ctx);
    fmt_json_member_fn other;
};

/* fmt_json_parse_streamed, with the streamed object's members given flat:
 * no jansson value is built for an object member, only for the values
 * inside it that are not strings. */
json_t *fmt_json_parse_streamed_flat(const char *text, size_t len,
                                     const char *streamed,
                                     const struct fmt_json_flat_stream *fns,
                                     void *ctx, struct fmt_json_error *error);

/* Reads the rest of file into *text (new, NUL-ended) and *len: 0, -ENOMEM
 * or the read's -errno (-EIO when it sets none). */
int fmt_read_whole(FILE *file, char **text, size_t *len);

/* errno for a zlib error code (Z_ERRNO uses errno). */
int fmt_zlib_errno(int zlib_code);

/* A key shortened for messages: at most 120 bytes, "..." when cut, bad
 * UTF-8 shown as '?'. buffer holds 128 bytes. */
const char *fmt_key_for_message(const char *key, size_t len, char buffer[128]);

/* New "dir/name" or NULL. */
char *fmt_path_join(const char *dir, const char *name);

/* Splits a comma-separated list into a new NULL-ended array of new strings
 * (empty elements dropped). text NULL or "" gives *out = NULL, 0.
 * Returns 0 or -ENOMEM. */
int fmt_split_list(const char *text, char ***out, size_t *count);
void fmt_free_list(char **list);
bool fmt_list_has(char *const *list, const char *name);

/* ---- import_records.c: a backup's records while they are read ---------- */

struct import_field {
    const char *name;         /* NUL-ended, in the record */
    size_t name_len;
    const char *text;         /* NUL-ended, text_len bytes, in the record */
    size_t text_len;
    bool is_null;             /* the value was JSON null */
};

/* One allocation: free() frees the record with its fields and bytes. */
struct import_record {
    const char *id;           /* NUL-ended, in the record */
    size_t id_len;
    size_t file_index;        /* where the id was first seen */
    size_t line;
    size_t field_count;
    struct import_field fields[];   /* in member order; the bytes follow */
};

struct import_records {
    struct import_record **order;  /* owned records, first-seen order; the
                                    * caller may free one and set it NULL */
    size_t count;
    size_t cap;
    size_t *slots;            /* owned: index + 1 into order, 0 = empty */
    size_t slot_count;        /* power of two, at least twice count */
};

/* One member of a parsed line: offsets into the line's bytes. */
struct import_member {
    size_t name_at;
    size_t name_len;
    size_t text_at;
    size_t text_len;
    bool is_string;
    bool is_null;
    bool nonzero_integer;
};

/* A parsed line, reused from line to line (import_line_parse resets it). */
struct import_line {
    struct import_member *members;  /* owned; a repeated name once */
    size_t count;
    size_t cap;
    char *bytes;              /* owned: names and texts, NUL-ended */
    size_t used;
    size_t bytes_cap;
};

void import_line_release(struct import_line *line);
/* Parses one line holding a JSON object into line: 0; 1 when the text does
 * not start with '{' (fmt_json_parse it to learn what it is); -1 with error
 * set (error->code -ENOMEM without memory). */
int import_line_parse(struct import_line *line, const char *text, size_t len,
                      struct fmt_json_error *error);
/* The record's id, as JavaScript's `record.id || record._id`: a non-empty
 * string's bytes or a non-zero integer's digits (borrowed from line, len
 * bytes), or NULL. */
const char *import_line_id(const struct import_line *line, size_t *len);

void import_records_init(struct import_records *records);
void import_records_release(struct import_records *records);
/* Adds the line's members under id (copied): a new record first seen at
 * (file_index, line_no), or merged onto the record of that id (its members
 * keep their places and take the new values, new members follow). Returns
 * 0 when new, 1 when merged, or -ENOMEM with nothing changed. */
int import_records_add(struct import_records *records, const char *id,
                       size_t id_len, const struct import_line *line,
                       size_t file_index, size_t line_no);

#endif
