/*
 * util.h - small helpers shared by every module: MD5, base64, time, errors,
 * and the test-only allocation-failure hook.
 *
 * Promises: no function here aborts; every allocating function returns NULL
 * (meaning -ENOMEM) or -ENOMEM and leaves its outputs untouched on failure.
 * Thread-safe: no function keeps state, except the allocation hook, which is
 * meant for single-threaded unit tests.
 */
#ifndef S3MEM_UTIL_H
#define S3MEM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- MD5 (RFC 1321) ---------------------------------------------------- */

struct s3m_md5 {
    uint32_t state[4];
    uint64_t length;          /* bytes fed so far */
    unsigned char buffer[64];
};

void s3m_md5_init(struct s3m_md5 *ctx);
void s3m_md5_update(struct s3m_md5 *ctx, const void *data, size_t len);
/* Writes the 16-byte digest; ctx must be initialised again before reuse. */
void s3m_md5_final(struct s3m_md5 *ctx, unsigned char digest[16]);
/* Writes 32 lowercase hex digits and a NUL into out. */
void s3m_md5_hex(const unsigned char digest[16], char out[33]);
/* Parses 32 hex digits (either case, nothing else) into digest.
 * Returns true on success; false leaves digest unspecified. */
bool s3m_md5_parse_hex(const char *hex, unsigned char digest[16]);

/* The value of hex digit c (either case), or -1 when c is not one. */
int s3m_hex_value(char c);

/* ---- base64 (RFC 4648, standard alphabet, with padding) ----------------- */

/* Length of the encoding of len bytes, not counting the NUL. */
size_t s3m_base64_encoded_length(size_t len);
/* Encodes len bytes into out, which holds encoded_length + 1 bytes; NUL-ends it. */
void s3m_base64_encode(const void *data, size_t len, char *out);
/* Decodes text (text_len bytes; padding optional, no whitespace) into out,
 * which holds at least text_len / 4 * 3 + 3 bytes. Sets *out_len.
 * Returns 0, or -EINVAL on a character outside the alphabet or a bad length
 * (*out_len untouched; out may hold scratch bytes). */
int s3m_base64_decode(const char *text, size_t text_len, unsigned char *out,
                      size_t *out_len);

/* ---- mapped files (mapped.c) ------------------------------------------- */

/* A regular file's bytes, mapped read-only as they were when opened. */
struct s3m_mapped {
    const char *data;            /* len bytes, not NUL-ended */
    size_t len;
    int slot;                    /* in mapped.c's table */
};
/* Maps fd's file (its size now). 0; -ENODEV when it cannot or need not be
 * mapped (not a regular file, empty, too many mapped at once): read it
 * instead; or -errno. A file that shrinks while mapped does not kill the
 * process: the bytes past its new end read as zeros, and
 * s3m_mapped_damaged tells. */
int s3m_mapped_open(int fd, struct s3m_mapped *out);
/* True when the file shrank under the mapping and zeros were read. */
bool s3m_mapped_damaged(const struct s3m_mapped *mapped);
/* Unmaps (nothing for a zeroed struct). */
void s3m_mapped_close(struct s3m_mapped *mapped);

/* ---- time --------------------------------------------------------------- */

/* Nanoseconds since the epoch, from CLOCK_REALTIME. */
int64_t s3m_time_now_ns(void);
/* Formats ns as ISO 8601 UTC with milliseconds: "2026-11-21T22:32:08.792Z".
 * out holds at least 32 bytes. Negative times are formatted too. */
void s3m_time_format_iso(int64_t ns, char out[32]);
/* Parses "YYYY-MM-DDTHH:MM:SS[.fff...]Z" (fraction optional, any digits) into
 * ns. Returns 0 or -EINVAL. */
int s3m_time_parse_iso(const char *text, int64_t *ns);

/* ---- errors ------------------------------------------------------------- */

/* Optional caller-owned error report: the first error wins. */
struct s3m_error {
    int code;                 /* positive errno, 0 while no error */
    char message[512];        /* lower case, problem first, naming the thing */
};

/* Records code (positive or negative errno) and a printf-style message in
 * err unless err is NULL or already holds an error. Returns -abs(code) so a
 * caller can write `return s3m_error_set(err, ENOENT, "...")`. */
int s3m_error_set(struct s3m_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void s3m_error_clear(struct s3m_error *err);

/* ---- log ---------------------------------------------------------------- */

/* Writes one line "TIME s3mem: MESSAGE" to stderr (the daemon's log). */
void s3m_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- allocation --------------------------------------------------------- */

/* malloc/calloc/realloc/strdup/strndup that every module uses, so that unit
 * tests can fail the Nth allocation. Same contracts as the libc functions. */
void *s3m_malloc(size_t size);
void *s3m_calloc(size_t count, size_t size);
void *s3m_realloc(void *ptr, size_t size);
/* A buffer of *cap bytes made to hold at least need: buf itself when it
 * does, else buf grown (to at least twice, *cap updated), or NULL with buf
 * and *cap unchanged. For buffers reused from item to item. */
void *s3m_grow(void *buf, size_t *cap, size_t need);
char *s3m_strdup(const char *text);
char *s3m_strndup(const char *text, size_t len);
void *s3m_memdup(const void *data, size_t len);

/* Test hook: make the nth allocation from now (1-based) fail, and every one
 * after it while `sticky`; 0 turns failures off. Returns the number of
 * allocations made since the last call, so a loop can learn how many a call
 * needs. Not thread-safe: for single-threaded unit tests only. */
size_t s3m_alloc_fail_after(size_t nth, bool sticky);

/* ---- hashing ------------------------------------------------------------ */

/* 64-bit hash of len bytes (xxh3). */
uint64_t s3m_hash(const void *data, size_t len);

/* ---- UTF-8 -------------------------------------------------------------- */

/* True when len bytes are valid UTF-8 (no overlongs, no surrogates). */
bool s3m_utf8_valid(const char *text, size_t len);
/* New copy of text (NUL-ended) with every byte that is not part of a
 * well-formed sequence replaced by U+FFFD, for JSON; NULL on -ENOMEM. */
char *s3m_utf8_sanitize(const char *text);

/* ---- paths -------------------------------------------------------------- */

/* True when absolute path names root (a canonical directory) or lies
 * under it, following the symlinks of the part outside root but never
 * looking inside it (within.c). Unresolvable paths count as within. */
bool s3m_path_within(const char *path, const char *root);

#endif
