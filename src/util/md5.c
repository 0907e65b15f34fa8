/*
 * md5.c - MD5 as specified by RFC 1321, plus hex conversion of digests.
 *
 * Design note: words are loaded and stored byte by byte in little-endian
 * order, so the code neither depends on the host's byte order nor makes
 * unaligned accesses. The four rounds are written as loops over tables of
 * shift amounts and the sine-derived constants T[i] = floor(2^32 * |sin(i)|).
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

/* Left-rotation amounts, four per round. */
static const unsigned md5_shift[4][4] = {
    {7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21},
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

/* The round function of step i (0..63) and the message word it consumes. */
static uint32_t md5_mix(unsigned i, uint32_t b, uint32_t c, uint32_t d,
                        unsigned *word)
{
    switch (i / 16) {
    case 0:
        *word = i;
        return (b & c) | (~b & d);
    case 1:
        *word = (5 * i + 1) % 16;
        return (b & d) | (c & ~d);
    case 2:
        *word = (3 * i + 5) % 16;
        return b ^ c ^ d;
    default:
        *word = (7 * i) % 16;
        return c ^ (b | ~d);
    }
}

/* Folds one 64-byte block into state. */
static void md5_block(uint32_t state[4], const unsigned char block[64])
{
    uint32_t x[16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];

    for (unsigned i = 0; i < 16; i++)
        x[i] = load_le32(block + 4 * i);
    for (unsigned i = 0; i < 64; i++) {
        unsigned word;
        uint32_t f = md5_mix(i, b, c, d, &word);
        uint32_t sum = a + f + md5_sine[i] + x[word];

        a = d;
        d = c;
        c = b;
        b = b + rotate_left(sum, md5_shift[i / 16][i % 4]);
    }
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
