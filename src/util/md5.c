/*
 * md5.c - MD5 as specified by RFC 1321, plus hex conversion of digests.
 *
 * Design note: words are loaded and stored byte by byte in little-endian
 * order, so the code neither depends on the host's byte order nor makes
 * unaligned accesses. The 64 steps are written out, four to a line, with
 * the message word and shift of each step from RFC 1321 section 3.4 and
 * the sine-derived constants T[i] = floor(2^32 * |sin(i)|) from a table.
 */
#include "s3mem/util.h"

#include <string.h>

/* T[i] of RFC 1321 section 3.4, 0-based. */
static const uint32_t md5_sine[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static uint32_t rotate_left(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void store_le32(unsigned char *p, uint32_t x)
{
    p[0] = (unsigned char)x;
    p[1] = (unsigned char)(x >> 8);
    p[2] = (unsigned char)(x >> 16);
    p[3] = (unsigned char)(x >> 24);
}

/* The round functions of RFC 1321 section 3.4, F and G in forms with one
 * operation fewer (same truth tables). */
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))

/* One step: a = b + ((a + f(b, c, d) + x[k] + T[i]) <<< s). */
#define MD5_STEP(f, a, b, c, d, k, s, i) \
    (a) = (b) + rotate_left((a) + f((b), (c), (d)) + x[(k)] + md5_sine[(i)], (s))

/* Four steps of a round, starting at step i with message words k0..k3;
 * s0..s3 are the round's shifts. Written out so that the compiler sees
 * constant indices and no per-step branch: this is the hot loop of save
 * and load, where every body's ETag is computed or checked. */
#define MD5_FOUR(f, i, k0, k1, k2, k3, s0, s1, s2, s3) \
    do { \
        MD5_STEP(f, a, b, c, d, k0, s0, (i)); \
        MD5_STEP(f, d, a, b, c, k1, s1, (i) + 1); \
        MD5_STEP(f, c, d, a, b, k2, s2, (i) + 2); \
        MD5_STEP(f, b, c, d, a, k3, s3, (i) + 3); \
    } while (0)

/* Folds one 64-byte block into state. */
static void md5_block(uint32_t state[4], const unsigned char block[64])
{
    uint32_t x[16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];

    for (unsigned i = 0; i < 16; i++)
        x[i] = load_le32(block + 4 * i);
    MD5_FOUR(MD5_F, 0, 0, 1, 2, 3, 7, 12, 17, 22);
    MD5_FOUR(MD5_F, 4, 4, 5, 6, 7, 7, 12, 17, 22);
    MD5_FOUR(MD5_F, 8, 8, 9, 10, 11, 7, 12, 17, 22);
    MD5_FOUR(MD5_F, 12, 12, 13, 14, 15, 7, 12, 17, 22);
    MD5_FOUR(MD5_G, 16, 1, 6, 11, 0, 5, 9, 14, 20);
    MD5_FOUR(MD5_G, 20, 5, 10, 15, 4, 5, 9, 14, 20);
    MD5_FOUR(MD5_G, 24, 9, 14, 3, 8, 5, 9, 14, 20);
    MD5_FOUR(MD5_G, 28, 13, 2, 7, 12, 5, 9, 14, 20);
    MD5_FOUR(MD5_H, 32, 5, 8, 11, 14, 4, 11, 16, 23);
    MD5_FOUR(MD5_H, 36, 1, 4, 7, 10, 4, 11, 16, 23);
    MD5_FOUR(MD5_H, 40, 13, 0, 3, 6, 4, 11, 16, 23);
    MD5_FOUR(MD5_H, 44, 9, 12, 15, 2, 4, 11, 16, 23);
    MD5_FOUR(MD5_I, 48, 0, 7, 14, 5, 6, 10, 15, 21);
    MD5_FOUR(MD5_I, 52, 12, 3, 10, 1, 6, 10, 15, 21);
    MD5_FOUR(MD5_I, 56, 8, 15, 6, 13, 6, 10, 15, 21);
    MD5_FOUR(MD5_I, 60, 4, 11, 2, 9, 6, 10, 15, 21);
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

void s3m_md5_init(struct s3m_md5 *ctx)
{
    ctx->state[0] = 0x67452301;
    ctx->state[1] = 0xefcdab89;
    ctx->state[2] = 0x98badcfe;
    ctx->state[3] = 0x10325476;
    ctx->length = 0;
}

void s3m_md5_update(struct s3m_md5 *ctx, const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t used = (size_t)(ctx->length % 64);

    ctx->length += len;
    if (used) {
        size_t take = 64 - used < len ? 64 - used : len;

        memcpy(ctx->buffer + used, in, take);
        in += take;
        len -= take;
        if (used + take < 64)
            return;
        md5_block(ctx->state, ctx->buffer);
    }
    for (; len >= 64; in += 64, len -= 64)
        md5_block(ctx->state, in);
    if (len)
        memcpy(ctx->buffer, in, len);
}

void s3m_md5_final(struct s3m_md5 *ctx, unsigned char digest[16])
{
    static const unsigned char padding[64] = {0x80};
    unsigned char bit_length[8];
    uint64_t bits = ctx->length * 8;
    size_t used = (size_t)(ctx->length % 64);

    for (unsigned i = 0; i < 8; i++)
        bit_length[i] = (unsigned char)(bits >> (8 * i));
    /* Pad to 56 bytes mod 64, then append the length: RFC 1321 3.1-3.2. */
    s3m_md5_update(ctx, padding, used < 56 ? 56 - used : 120 - used);
    s3m_md5_update(ctx, bit_length, sizeof(bit_length));
    for (unsigned i = 0; i < 4; i++)
        store_le32(digest + 4 * i, ctx->state[i]);
    memset(ctx, 0, sizeof(*ctx));
}

void s3m_md5_hex(const unsigned char digest[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";

    for (unsigned i = 0; i < 16; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 0x0f];
    }
    out[32] = '\0';
}

int s3m_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool s3m_md5_parse_hex(const char *hex, unsigned char digest[16])
{
    for (unsigned i = 0; i < 16; i++) {
        int high = s3m_hex_value(hex[2 * i]);
        int low = high < 0 ? -1 : s3m_hex_value(hex[2 * i + 1]);

        if (low < 0)
            return false;
        digest[i] = (unsigned char)(high << 4 | low);
    }
    return hex[32] == '\0';
}
