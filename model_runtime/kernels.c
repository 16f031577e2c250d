/* y = x @ W^T for weights stored in groups of 32, with float32 activations.
 *
 * PyTorch's CPU kernels for 4- and 8-bit weights want bfloat16 activations,
 * which changes a small model's greedy tokens; float16 weights keep them but
 * move four times the bytes of 4-bit ones. These kernels keep both: each
 * group of 32 weights is d * q + m (q 4-bit, GGUF's Q4_1) or d * q (q signed
 * 8-bit, GGUF's Q8_0), so a GGUF checkpoint is held exactly, and the sums run
 * in float32 over the weights' exact values.
 *
 * Built by native.py with OpenMP and -march=x86-64-v3 (AVX2 and FMA), or
 * x86-64-v4 where the CPU has AVX-512; the OpenMP runtime is the one PyTorch
 * already loaded, so both share threads. With AVX-512 the matrix products take
 * two blocks of W (16 outputs) per vector and attention two queries; each
 * output's sum is the same sequence of float32 operations as with AVX2, so both
 * builds give the same bits.
 *
 * Layout (quantize.pack_groups writes it): the rows of W in blocks of 8, N
 * padded with zero rows to a whole block. For a block and an input column k,
 * the block's 8 q values sit side by side, 4 bytes for 4-bit q (row j in bits
 * 4j to 4j + 3) or 8 bytes for 8-bit q, so one vector op unpacks the weights
 * of 8 outputs. d and m are [blocks][K / 32][8] floats; m is NULL for 8-bit.
 *
 * grouped_matvec, for decode steps: each (row of x, output) sum is one float32
 * accumulator taking the columns in order, the same whatever M is, so a
 * request's result never depends on how many others share its batch; and a
 * weight, once unpacked, serves every row of x, so 8 rows cost far less than
 * 8 times 1. grouped_matmul, for many rows (a prompt's tokens, a step with many drafts): see below.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

/* GROUP (weights per scale) and BLOCK (rows of W side by side) come from
 * native.py's compile flags: the Python packing and these loops read one value. */
#if !defined(GROUP) || !defined(BLOCK)
#error "build kernels.c through model_runtime/native.py, which sets GROUP and BLOCK"
#endif
_Static_assert(BLOCK == 8, "a block of W's rows is one 8-float AVX vector");
_Static_assert(GROUP % 2 == 0, "two 4-bit weights share a byte");
#define MAX_ROWS 8  /* rows of x per pass of the decode kernel: 8 accumulators keep both FMA units busy */
#define SUPER 4  /* blocks of W per task of the decode kernel */
/* The widest float vector the build has, for the matrix-matrix kernel's panel. */
#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define vec_zero _mm512_setzero_ps
#define vec_load _mm512_loadu_ps
#define vec_store _mm512_storeu_ps
#define vec_set1 _mm512_set1_ps
#define vec_fmadd _mm512_fmadd_ps
#define PANEL_ROWS 12  /* rows of x per pass of the matrix-matrix kernel: 24 of the 32 registers accumulate */
#else
typedef __m256 vec;
#define LANES 8
#define vec_zero _mm256_setzero_ps
#define vec_load _mm256_loadu_ps
#define vec_store _mm256_storeu_ps
#define vec_set1 _mm256_set1_ps
#define vec_fmadd _mm256_fmadd_ps
#define PANEL_ROWS 6  /* rows of x per pass of the matrix-matrix kernel: 12 accumulators, 2 weight vectors, 1 input */
#endif
#define PANEL_WIDTH (2 * LANES)  /* outputs per panel: two vectors */
#define PANEL_BLOCKS (PANEL_WIDTH / BLOCK)

/* The weights of one block's 8 rows at one column, as exact floats: d * q + m, or d * q. */
static inline __attribute__((always_inline)) __m256 weights_at(const int bits, const uint8_t *at, __m256 d, __m256 m) {
    if (bits == 4) {
        int32_t word;
        memcpy(&word, at, 4);
        __m256i q = _mm256_srlv_epi32(_mm256_set1_epi32(word), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        /* d * q is exact in float32 (a float16 d times at most 15), so this rounds once, as d * q + m does */
        return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(q, _mm256_set1_epi32(15))), d, m);
    }
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)at))), d);
}

/* y[i, 8b .. 8b + 7] for `rows` rows of x and `blocks` blocks from b (both constants once inlined).
 * xt is the tile of x transposed, [K][MAX_ROWS]: the rows' inputs at a column share a cache line, where
 * rows K floats apart would all fall in the same bank of the L1 cache and take turns to load. */
static inline __attribute__((always_inline)) void block_tile(
    const int bits, const int rows, const int blocks, const float *xt, int K, const uint8_t *q,
    const float *d, const float *m, int N, int b, float *y) {
    const int groups = K / GROUP;
    __m256 acc[MAX_ROWS][SUPER];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < blocks; j++) acc[i][j] = _mm256_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m256 dg[SUPER], mg[SUPER];
        for (int j = 0; j < blocks; j++) {
            size_t at = ((size_t)(b + j) * groups + g) * BLOCK;
            dg[j] = _mm256_loadu_ps(d + at);
            mg[j] = m ? _mm256_loadu_ps(m + at) : _mm256_setzero_ps();
        }
        for (int k = g * GROUP; k < (g + 1) * GROUP; k++)
            for (int j = 0; j < blocks; j++) {
                __m256 w = weights_at(bits, q + ((size_t)(b + j) * K + k) * bits, dg[j], mg[j]);
                for (int i = 0; i < rows; i++)
                    acc[i][j] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(xt + (size_t)k * MAX_ROWS + i), acc[i][j]);
            }
    }
    for (int j = 0; j < blocks; j++) {
        int first = (b + j) * BLOCK, width = N - first < BLOCK ? N - first : BLOCK;
        for (int i = 0; i < rows; i++) {
            if (width == BLOCK) {
                _mm256_storeu_ps(y + (size_t)i * N + first, acc[i][j]);
            } else {  /* the padded last block */
                float out[BLOCK];
                _mm256_storeu_ps(out, acc[i][j]);
                memcpy(y + (size_t)i * N + first, out, sizeof(float) * width);
            }
        }
    }
}

#ifdef __AVX512F__
/* Two blocks' 16 rows of W at one column, b's in the low half and b + 1's (`next` bytes on) in the high
 * half: lane for lane what weights_at computes, so a sum takes the same values in the same order. */
static inline __attribute__((always_inline)) __m512 pair_at(const int bits, const uint8_t *at, size_t next,
                                                            __m512 d, __m512 m) {
    if (bits == 4) {
        int32_t low, high;
        memcpy(&low, at, 4);
        memcpy(&high, at + next, 4);
        __m512i q = _mm512_mask_set1_epi32(_mm512_set1_epi32(low), 0xFF00, high);
        q = _mm512_srlv_epi32(q, _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28));
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, _mm512_set1_epi32(15))), d, m);
    }
    __m128i q = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)at), _mm_loadl_epi64((const __m128i *)(at + next)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), d);
}

/* Blocks b and b + 1's scales (or minimums) for one group, as one vector. */
static inline __m512 pair_of(const float *v, size_t at, size_t next) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(v + at)), _mm256_loadu_ps(v + at + next), 1);
}

/* block_tile for `pairs` pairs of blocks from b: 16 outputs a vector. */
static inline __attribute__((always_inline)) void pair_tile(
    const int bits, const int rows, const int pairs, const float *xt, int K, const uint8_t *q,
    const float *d, const float *m, int N, int b, float *y) {
    const int groups = K / GROUP;
    const size_t next_scale = (size_t)groups * BLOCK, next_q = (size_t)K * bits;
    __m512 acc[MAX_ROWS][SUPER / 2];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < pairs; j++) acc[i][j] = _mm512_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m512 dg[SUPER / 2], mg[SUPER / 2];
        for (int j = 0; j < pairs; j++) {
            size_t at = ((size_t)(b + 2 * j) * groups + g) * BLOCK;
            dg[j] = pair_of(d, at, next_scale);
            mg[j] = m ? pair_of(m, at, next_scale) : _mm512_setzero_ps();
        }
        for (int k = g * GROUP; k < (g + 1) * GROUP; k++)
            for (int j = 0; j < pairs; j++) {
                __m512 w = pair_at(bits, q + ((size_t)(b + 2 * j) * K + k) * bits, next_q, dg[j], mg[j]);
                for (int i = 0; i < rows; i++)
                    acc[i][j] = _mm512_fmadd_ps(w, _mm512_set1_ps(xt[(size_t)k * MAX_ROWS + i]), acc[i][j]);
            }
    }
    for (int j = 0; j < pairs; j++) {
        int first = (b + 2 * j) * BLOCK, width = N - first < 2 * BLOCK ? N - first : 2 * BLOCK;
        for (int i = 0; i < rows; i++)
            _mm512_mask_storeu_ps(y + (size_t)i * N + first, (__mmask16)((1u << width) - 1), acc[i][j]);
    }
}
#endif

/* One task: up to SUPER blocks for up to MAX_ROWS rows. Fewer rows take more
 * blocks at once, so that enough independent sums are in flight. */
static inline __attribute__((always_inline)) void rows_times_blocks(
    const int bits, const float *xt, int rows, int K, const uint8_t *q, const float *d, const float *m,
    int N, int b, int count, float *y) {
    int j = 0;
#ifdef __AVX512F__
    /* 32 vector registers: every height takes SUPER blocks as pairs; an odd last block goes on below */
    #define PAIRS(R) for (; j + SUPER <= count; j += SUPER) pair_tile(bits, R, SUPER / 2, xt, K, q, d, m, N, b + j, y); \
                     for (; j + 2 <= count; j += 2) pair_tile(bits, R, 1, xt, K, q, d, m, N, b + j, y)
    switch (rows) {
        case 1: PAIRS(1); break;
        case 2: PAIRS(2); break;
        case 3: PAIRS(3); break;
        case 4: PAIRS(4); break;
        case 5: PAIRS(5); break;
        case 6: PAIRS(6); break;
        case 7: PAIRS(7); break;
        default: PAIRS(8);
    }
    #undef PAIRS
#endif
    #define TILE(R, B) for (; j + B <= count; j += B) block_tile(bits, R, B, xt, K, q, d, m, N, b + j, y)
    switch (rows) {
        case 1: TILE(1, 4); TILE(1, 2); TILE(1, 1); break;
        case 2: TILE(2, 2); TILE(2, 1); break;
        case 3: TILE(3, 2); TILE(3, 1); break;
        case 4: TILE(4, 2); TILE(4, 1); break;
        case 5: TILE(5, 1); break;
        case 6: TILE(6, 1); break;
        case 7: TILE(7, 1); break;
        default: TILE(8, 1);
    }
    #undef TILE
}

/* Returns 0, or -1 when it could not allocate its scratch space. */
int grouped_matvec(int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m,
                   int N, float *y) {
    const int blocks = (N + BLOCK - 1) / BLOCK, tiles = (M + MAX_ROWS - 1) / MAX_ROWS;
    float *xt = calloc((size_t)tiles * K * MAX_ROWS, sizeof(float));
    if (!xt) return -1;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) xt[((size_t)(i / MAX_ROWS) * K + k) * MAX_ROWS + i % MAX_ROWS] = x[(size_t)i * K + k];
    /* dynamic: when another thread of the process takes a core for a moment (a stream's reader), the
     * other thread takes more of the blocks instead of waiting for the delayed one at the end */
    #pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < blocks; b += SUPER) {
        int count = blocks - b < SUPER ? blocks - b : SUPER;
        for (int i = 0; i < M; i += MAX_ROWS) {  /* the blocks' weights stay in cache while each tile of x passes */
            int rows = M - i < MAX_ROWS ? M - i : MAX_ROWS;
            const float *xi = xt + (size_t)i * K;
            float *yi = y + (size_t)i * N;
            /* bits spelled out as a constant, so that each body is compiled for its format */
            if (bits == 4) rows_times_blocks(4, xi, rows, K, q, d, m, N, b, count, yi);
            else rows_times_blocks(8, xi, rows, K, q, d, m, N, b, count, yi);
        }
    }
    free(xt);
    return 0;
}

/* Many rows of x (a prompt's tokens, or a step's drafted rows): unpack PANEL_BLOCKS blocks of W at a
 * time into a float32 panel laid out [K][PANEL_BLOCKS * 8], then run a
 * register-blocked product over it, PANEL_ROWS rows of x by the panel's
 * outputs, as a float32 GEMM does. Each output's sum takes the columns in
 * order, one fused multiply-add each, as grouped_matvec's does: a prompt's
 * token gets the same bits as the same token in a decode step.
 */
static inline __attribute__((always_inline)) void panel_tile(
    const int rows, const float *x, int K, const float *panel, float *out) {
    vec acc[PANEL_ROWS][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = vec_zero();
    for (int k = 0; k < K; k++) {
        vec b0 = vec_load(panel + (size_t)k * PANEL_WIDTH), b1 = vec_load(panel + (size_t)k * PANEL_WIDTH + LANES);
        for (int r = 0; r < rows; r++) {
            vec a = vec_set1(x[(size_t)r * K + k]);
            acc[r][0] = vec_fmadd(a, b0, acc[r][0]);
            acc[r][1] = vec_fmadd(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        vec_store(out + r * PANEL_WIDTH, acc[r][0]);
        vec_store(out + r * PANEL_WIDTH + LANES, acc[r][1]);
    }
}

static inline __attribute__((always_inline)) void unpack_panel(
    const int bits, int K, const uint8_t *q, const float *d, const float *m, int blocks, int b, float *panel) {
    const int groups = K / GROUP;
    for (int j = 0; j < PANEL_BLOCKS; j++) {
        if (b + j >= blocks) {  /* past the last block: zero columns */
            for (int k = 0; k < K; k++) _mm256_storeu_ps(panel + (size_t)k * PANEL_WIDTH + 8 * j, _mm256_setzero_ps());
            continue;
        }
        for (int g = 0; g < groups; g++) {
            size_t at = ((size_t)(b + j) * groups + g) * BLOCK;
            __m256 dg = _mm256_loadu_ps(d + at), mg = m ? _mm256_loadu_ps(m + at) : _mm256_setzero_ps();
            for (int k = g * GROUP; k < (g + 1) * GROUP; k++)
                _mm256_storeu_ps(panel + (size_t)k * PANEL_WIDTH + 8 * j,
                                 weights_at(bits, q + ((size_t)(b + j) * K + k) * bits, dg, mg));
        }
    }
}

/* Returns 0, or -1 when it could not allocate its scratch space. */
int grouped_matmul(int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m,
                   int N, float *y) {
    const int blocks = (N + BLOCK - 1) / BLOCK;
    int failed = 0;
    #pragma omp parallel
    {
        float *panel = malloc(sizeof(float) * (size_t)K * PANEL_WIDTH);
        if (!panel) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic)
        for (int b = 0; b < blocks; b += PANEL_BLOCKS) {
            if (!panel) continue;
            if (bits == 4) unpack_panel(4, K, q, d, m, blocks, b, panel);
            else unpack_panel(8, K, q, d, m, blocks, b, panel);
            float out[PANEL_ROWS * PANEL_WIDTH];
            int n0 = b * BLOCK, width = N - n0 < PANEL_WIDTH ? N - n0 : PANEL_WIDTH;
            for (int i = 0; i < M; i += PANEL_ROWS) {
                int rows = M - i < PANEL_ROWS ? M - i : PANEL_ROWS;
                const float *xi = x + (size_t)i * K;
                switch (rows) {  /* one unrolled body per tile height */
                    case 1: panel_tile(1, xi, K, panel, out); break;
                    case 2: panel_tile(2, xi, K, panel, out); break;
                    case 3: panel_tile(3, xi, K, panel, out); break;
                    case 4: panel_tile(4, xi, K, panel, out); break;
                    case 5: panel_tile(5, xi, K, panel, out); break;
#if PANEL_ROWS > 6
                    case 6: panel_tile(6, xi, K, panel, out); break;
                    case 7: panel_tile(7, xi, K, panel, out); break;
                    case 8: panel_tile(8, xi, K, panel, out); break;
                    case 9: panel_tile(9, xi, K, panel, out); break;
                    case 10: panel_tile(10, xi, K, panel, out); break;
                    case 11: panel_tile(11, xi, K, panel, out); break;
#endif
                    default: panel_tile(PANEL_ROWS, xi, K, panel, out);
                }
                for (int r = 0; r < rows; r++)
                    memcpy(y + (size_t)(i + r) * N + n0, out + r * PANEL_WIDTH, sizeof(float) * width);
            }
        }
        free(panel);
    }
    return failed ? -1 : 0;
}


/* ---- The rest of a layer, for rows that are tokens (of one prompt, or one per
 * request in a decode step), so that a layer is a handful of calls instead of
 * some thirty PyTorch operators, each of which costs more to dispatch than to
 * compute at this size. */

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lane j: the sum of a[j]'s lanes. */
static inline __m256 hsum8(const __m256 a[8]) {
    __m256 low = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 high = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(low, high, 0x20), _mm256_permute2f128_ps(low, high, 0x31));
}

/* e^x for 8 floats, within about a float32 ulp: 2^n * e^r with n = round(x / ln 2) and e^r from its
 * Taylor series to r^6 (|r| <= ln 2 / 2). x is clamped to [-87, 88], where e^x stays a normal float. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln 2 in two parts, the first short enough that n times it is exact */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i two_to_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(two_to_n));
}

/* x [rows, dim] += delta (unless delta is NULL); out = x / rms(x) * weight, as transformers' RMSNorm. */
void add_rms_norm(float *x, const float *delta, const float *weight, float eps, int rows, int dim, float *out) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * dim, *o = out + (size_t)r * dim;
        if (delta)
            for (int i = 0; i < dim; i++) xr[i] += delta[(size_t)r * dim + i];
        float mean = 0;
        for (int i = 0; i < dim; i++) mean += xr[i] * xr[i];
        float scale = 1.0f / sqrtf(mean / dim + eps);
        for (int i = 0; i < dim; i++) o[i] = weight[i] * (xr[i] * scale);
    }
}

/* gate_up [rows, 2 * inter] -> out [rows, inter] = silu(gate) * up; inter a multiple of 8. */
void silu_mul(const float *gate_up, int rows, int inter, float *out) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < inter; i += 8) {
            __m256 g = _mm256_loadu_ps(gate_up + (size_t)r * 2 * inter + i);
            __m256 u = _mm256_loadu_ps(gate_up + (size_t)r * 2 * inter + inter + i);
            __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
            _mm256_storeu_ps(out + (size_t)r * inter + i, _mm256_mul_ps(silu, u));
        }
}

/* x rotated by its position: x * cos + roll(x, half) * sin, sin's first half negated (model.py's tables). */
static void rope(const float *x, const float *cos_row, const float *sin_row, int head_dim, float *out) {
    int half = head_dim / 2;
    for (int i = 0; i < head_dim; i++) out[i] = x[i] * cos_row[i] + x[(i + half) % head_dim] * sin_row[i];
}

/* scores[t] = q . keys[t] * scale for t in [from, to) (rows of head_dim floats), from a multiple of 8:
 * the keys of whole blocks of 8 below `length` eight at a time, the others one by one. A score's sums
 * thus depend on the row's length alone, not on how its range is cut. Returns the largest. */
static float scores_between(const float *q, const float *keys, int64_t from, int64_t to, int64_t length,
                            int head_dim, float scale, float *scores) {
    const int64_t whole = length / 8 * 8;
    __m256 top = _mm256_set1_ps(-INFINITY);
    int64_t t = from;
    for (; t + 8 <= to && t + 8 <= whole; t += 8) {
        __m256 acc[8];
        for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
        for (int i = 0; i < head_dim; i += 8) {
            __m256 qi = _mm256_loadu_ps(q + i);
            for (int j = 0; j < 8; j++)
                acc[j] = _mm256_fmadd_ps(qi, _mm256_loadu_ps(keys + (t + j) * head_dim + i), acc[j]);
        }
        __m256 s = _mm256_mul_ps(hsum8(acc), _mm256_set1_ps(scale));
        _mm256_storeu_ps(scores + t, s);
        top = _mm256_max_ps(top, s);
    }
    float largest = -INFINITY, lanes[8];
    _mm256_storeu_ps(lanes, top);
    for (int j = 0; j < 8; j++) largest = lanes[j] > largest ? lanes[j] : largest;
    for (; t < to; t++) {
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < head_dim; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(keys + t * head_dim + i), acc);
        scores[t] = hsum(acc) * scale;
        largest = scores[t] > largest ? scores[t] : largest;
    }
    return largest;
}

/* scores[t] = e^(scores[t] - top) for t < length; returns their sum. The buffer holds 8 floats more. */
static float softmax_weights(float *scores, int64_t length, float top) {
    __m256 sum = _mm256_setzero_ps();
    for (int64_t t = 0; t < length; t += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + t), _mm256_set1_ps(top)));
        if (t + 8 > length)  /* lanes past the end weigh nothing */
            e = _mm256_and_ps(e, _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_ps((float)(length - t)), _CMP_LT_OQ));
        _mm256_storeu_ps(scores + t, e);
        sum = _mm256_add_ps(sum, e);
    }
    return hsum(sum);
}

/* sums[c .. c + 8 * chunks) += p[t] * values[t][c ..] for t in [from, to), t in order: each 8 columns
 * in a register of their own, so that the sums over t run side by side. */
static inline __attribute__((always_inline)) void weighted_columns(
    const int chunks, const float *p, const float *values, int64_t from, int64_t to, int head_dim, int c, float *sums) {
    __m256 acc[8];
    for (int j = 0; j < chunks; j++) acc[j] = _mm256_loadu_ps(sums + c + 8 * j);
    for (int64_t t = from; t < to; t++) {
        __m256 pt = _mm256_broadcast_ss(p + t);
        for (int j = 0; j < chunks; j++)
            acc[j] = _mm256_fmadd_ps(pt, _mm256_loadu_ps(values + t * head_dim + c + 8 * j), acc[j]);
    }
    for (int j = 0; j < chunks; j++) _mm256_storeu_ps(sums + c + 8 * j, acc[j]);
}

/* BODY(n) for n = (head_dim - c) / 8 up to 8: one unrolled body per width, up to 64 columns. */
#define BY_WIDTH(BODY) switch ((head_dim - c) / 8) { \
    case 1: BODY(1); break; case 2: BODY(2); break; case 3: BODY(3); break; case 4: BODY(4); break; \
    case 5: BODY(5); break; case 6: BODY(6); break; case 7: BODY(7); break; default: BODY(8); }

static void weighted_between(const float *p, const float *values, int64_t from, int64_t to, int head_dim, float *sums) {
    #define COLUMNS(n) weighted_columns(n, p, values, from, to, head_dim, c, sums)
    for (int c = 0; c < head_dim; c += 64) BY_WIDTH(COLUMNS)
    #undef COLUMNS
}

#ifdef __AVX512F__
/* Two queries at once, a and b, where the build has AVX-512: a 512-bit register holds 8 lanes of a's sum
 * and the same 8 lanes of b's, each lane the same operations as for its query alone, and each key or
 * value vector is read once for both. */

/* a's and b's 8 floats from `at` as one register, and back. */
static inline __m512 halves(const float *a, const float *b) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}

static inline void store_halves(__m512 v, float *a, float *b) {
    _mm256_storeu_ps(a, _mm512_castps512_ps256(v));
    _mm256_storeu_ps(b, _mm512_extractf32x8_ps(v, 1));
}

/* scores_between's whole blocks of 8 keys in [from, to) for both queries: to is within both rows' whole
 * blocks. tops[0] and tops[1] take the largest of each. */
static void pair_scores(const float *qa, const float *qb, const float *keys, int64_t from, int64_t to,
                        int head_dim, float scale, float *sa, float *sb, float tops[2]) {
    __m512 top = _mm512_set1_ps(-INFINITY);
    for (int64_t t = from; t < to; t += 8) {
        __m512 acc[8];
        for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_ps();
        for (int i = 0; i < head_dim; i += 8) {
            __m512 q = halves(qa + i, qb + i);
            for (int j = 0; j < 8; j++)
                acc[j] = _mm512_fmadd_ps(q, _mm512_broadcast_f32x8(_mm256_loadu_ps(keys + (t + j) * head_dim + i)), acc[j]);
        }
        __m256 low[8], high[8];
        for (int j = 0; j < 8; j++) {
            low[j] = _mm512_castps512_ps256(acc[j]);
            high[j] = _mm512_extractf32x8_ps(acc[j], 1);
        }
        __m256 a = _mm256_mul_ps(hsum8(low), _mm256_set1_ps(scale)), b = _mm256_mul_ps(hsum8(high), _mm256_set1_ps(scale));
        _mm256_storeu_ps(sa + t, a);
        _mm256_storeu_ps(sb + t, b);
        top = _mm512_max_ps(top, _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1));
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, top);
    for (int j = 0; j < 16; j++) tops[j / 8] = lanes[j] > tops[j / 8] ? lanes[j] : tops[j / 8];
}

/* weighted_columns for both queries over [from, to). */
static inline __attribute__((always_inline)) void pair_columns(
    const int chunks, const float *pa, const float *pb, const float *values, int64_t from, int64_t to,
    int head_dim, int c, float *sa, float *sb) {
    __m512 acc[8];
    for (int j = 0; j < chunks; j++) acc[j] = halves(sa + c + 8 * j, sb + c + 8 * j);
    for (int64_t t = from; t < to; t++) {
        __m512 pt = _mm512_insertf32x8(_mm512_set1_ps(pa[t]), _mm256_set1_ps(pb[t]), 1);
        for (int j = 0; j < chunks; j++)
            acc[j] = _mm512_fmadd_ps(pt, _mm512_broadcast_f32x8(_mm256_loadu_ps(values + t * head_dim + c + 8 * j)), acc[j]);
    }
    for (int j = 0; j < chunks; j++) store_halves(acc[j], sa + c + 8 * j, sb + c + 8 * j);
}

static void pair_values(const float *pa, const float *pb, const float *values, int64_t from, int64_t to,
                        int head_dim, float *sa, float *sb) {
    #define COLUMNS(n) pair_columns(n, pa, pb, values, from, to, head_dim, c, sa, sb)
    for (int c = 0; c < head_dim; c += 64) BY_WIDTH(COLUMNS)
    #undef COLUMNS
}
#endif

#define QUERY_ROWS 4  /* rows of one slot attended in one task: with GQA's shared heads, a dozen queries */
#define KEY_CHUNK 64  /* keys (and then values) read by every query of a task while in L1: 16 KB at head_dim 64 */

/* One task: the queries of `count` rows (from `first`, all of one slot) that share key-value head kv,
 * against that head's cache, a chunk of keys at a time. For each query, the scores, their softmax and
 * the weighted values are the same operations in the same order as for the query alone: a row gets the
 * same bits in a prompt's chunk, beside other rows of its slot, or alone in a decode step.
 * `scratch` holds queries * (head_dim for the rotated query + head_dim for sums + max_seq + 8 for scores). */
static void attend(const float *qkv, int first, int count, int kv, const float *cos_table, const float *sin_table,
                   const int64_t *positions, const float *keys, const float *values, int n_heads, int n_kv,
                   int head_dim, int max_seq, float scale, float *scratch, float *out) {
    const int width = (n_heads + 2 * n_kv) * head_dim, per = n_heads / n_kv, queries = count * per;
    const size_t stride = 2 * (size_t)head_dim + max_seq + 8;  /* one query's query, sums, scores */
    float top[queries], total[queries];
    int64_t longest = 0;
    for (int i = 0; i < queries; i++) {  /* query i: row first + i / per, head kv * per + i % per */
        int r = first + i / per, h = kv * per + i % per;
        float *q = scratch + i * stride;
        rope(qkv + (size_t)r * width + h * head_dim, cos_table + positions[r] * head_dim,
             sin_table + positions[r] * head_dim, head_dim, q);
        memset(q + head_dim, 0, sizeof(float) * head_dim);
        top[i] = -INFINITY;
        longest = positions[r] + 1 > longest ? positions[r] + 1 : longest;
    }
    #define LENGTH(i) (positions[first + (i) / per] + 1)
    #define END(i) (t + KEY_CHUNK < LENGTH(i) ? t + KEY_CHUNK : LENGTH(i))  /* query i's keys in this chunk end */
    #define QUERY(i) (scratch + (i) * stride)
    #define SUMS(i) (QUERY(i) + head_dim)
    #define SCORES(i) (QUERY(i) + 2 * head_dim)
    for (int64_t t = 0; t < longest; t += KEY_CHUNK) {
        int i = 0;
#ifdef __AVX512F__
        for (; i + 1 < queries; i += 2) {  /* the keys of both queries' whole blocks together, then each alone */
            int64_t common = END(i) / 8 * 8 < END(i + 1) / 8 * 8 ? END(i) / 8 * 8 : END(i + 1) / 8 * 8, whole;
            whole = LENGTH(i) / 8 * 8 < LENGTH(i + 1) / 8 * 8 ? LENGTH(i) / 8 * 8 : LENGTH(i + 1) / 8 * 8;
            common = common < whole ? common : whole;
            float tops[2] = {-INFINITY, -INFINITY};
            if (common > t) pair_scores(QUERY(i), QUERY(i + 1), keys, t, common, head_dim, scale, SCORES(i), SCORES(i + 1), tops);
            for (int j = 0; j < 2; j++) {
                int64_t from = common > t ? common : t;
                float largest = from < END(i + j) ? scores_between(QUERY(i + j), keys, from, END(i + j), LENGTH(i + j),
                                                                   head_dim, scale, SCORES(i + j)) : -INFINITY;
                largest = largest > tops[j] ? largest : tops[j];
                top[i + j] = largest > top[i + j] ? largest : top[i + j];
            }
        }
#endif
        for (; i < queries; i++)
            if (t < LENGTH(i)) {
                float largest = scores_between(QUERY(i), keys, t, END(i), LENGTH(i), head_dim, scale, SCORES(i));
                top[i] = largest > top[i] ? largest : top[i];
            }
    }
    for (int i = 0; i < queries; i++) total[i] = softmax_weights(SCORES(i), LENGTH(i), top[i]);
    for (int64_t t = 0; t < longest; t += KEY_CHUNK) {
        int i = 0;
#ifdef __AVX512F__
        for (; i + 1 < queries; i += 2) {  /* the values both queries weigh together, then each alone */
            int64_t common = END(i) < END(i + 1) ? END(i) : END(i + 1);
            if (common > t) pair_values(SCORES(i), SCORES(i + 1), values, t, common, head_dim, SUMS(i), SUMS(i + 1));
            for (int j = 0; j < 2; j++) {
                int64_t from = common > t ? common : t;
                if (from < END(i + j)) weighted_between(SCORES(i + j), values, from, END(i + j), head_dim, SUMS(i + j));
            }
        }
#endif
        for (; i < queries; i++)
            if (t < LENGTH(i)) weighted_between(SCORES(i), values, t, END(i), head_dim, SUMS(i));
    }
    #undef LENGTH
    #undef END
    #undef QUERY
    #undef SUMS
    #undef SCORES
    for (int i = 0; i < queries; i++) {
        int r = first + i / per, h = kv * per + i % per;
        const float *sums = scratch + i * stride + head_dim;
        float *o = out + (size_t)r * n_heads * head_dim + h * head_dim;
        for (int c = 0; c < head_dim; c += 8)
            _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_loadu_ps(sums + c), _mm256_set1_ps(1.0f / total[i])));
    }
}

/* For each row (a token, with its request's slot and its position): rotate its
 * query and key and write key and value at its position in its cache slot;
 * then, every row's key being in place, attend over positions 0..position of
 * its slot. qkv is [rows, (n_heads + 2 * n_kv) * head_dim]; caches are
 * [slots, n_kv, max_seq, head_dim]; out is [rows, n_heads * head_dim].
 * Returns -1 when it could not allocate its scratch space. */
int attention(const float *qkv, int rows, const float *cos_table, const float *sin_table,
              const int64_t *positions, const int64_t *slots, float *k_cache, float *v_cache,
              int n_heads, int n_kv, int head_dim, int max_seq, float *out) {
    const int width = (n_heads + 2 * n_kv) * head_dim;
    for (int r = 0; r < rows; r++) {
        const float *k = qkv + (size_t)r * width + n_heads * head_dim, *v = k + n_kv * head_dim;
        for (int h = 0; h < n_kv; h++) {
            size_t at = (((size_t)slots[r] * n_kv + h) * max_seq + positions[r]) * head_dim;
            rope(k + h * head_dim, cos_table + positions[r] * head_dim, sin_table + positions[r] * head_dim,
                 head_dim, k_cache + at);
            for (int i = 0; i < head_dim; i++) v_cache[at + i] = v[h * head_dim + i];
        }
    }
    /* Tasks: runs of up to QUERY_ROWS consecutive rows of one slot (a prompt's chunk, a request's
     * drafts), by key-value head, so that a slot's keys and values come from memory once for them all. */
    int *starts = malloc(sizeof(int) * (rows + 1)), runs = 0;
    if (!starts) return -1;
    for (int r = 0; r < rows; r++)
        if (r == 0 || slots[r] != slots[r - 1] || r - starts[runs - 1] == QUERY_ROWS) starts[runs++] = r;
    starts[runs] = rows;
    int failed = 0;
    const float scale = 1.0f / sqrtf((float)head_dim);
    const int per = n_heads / n_kv;
    #pragma omp parallel
    {
        float *scratch = malloc(sizeof(float) * QUERY_ROWS * per * (2 * (size_t)head_dim + max_seq + 8));
        if (!scratch) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for collapse(2) schedule(dynamic)
        for (int run = 0; run < runs; run++)
            for (int kv = 0; kv < n_kv; kv++) {
                if (!scratch) continue;
                size_t base = ((size_t)slots[starts[run]] * n_kv + kv) * max_seq * head_dim;
                attend(qkv, starts[run], starts[run + 1] - starts[run], kv, cos_table, sin_table, positions,
                       k_cache + base, v_cache + base, n_heads, n_kv, head_dim, max_seq, scale, scratch, out);
            }
        free(scratch);
    }
    free(starts);
    return failed ? -1 : 0;
}

/* One grouped weight matrix as quantize.GroupedLinear holds it; bias may be NULL. */
typedef struct {
    const uint8_t *q;
    const float *d, *m, *bias;
    int bits, in, out;
} Matrix;

/* One decoder layer: its four matrices; the norm before its feed-forward and the one after it (the
 * next layer's attention norm, or the model's final norm); its KV cache. */
typedef struct {
    Matrix wqkv, wo, w13, w2;
    const float *ffn_norm, *next_norm;
    float *k_cache, *v_cache;
} Layer;

static int linear(const Matrix *w, const float *x, int rows, int many_rows, float *y) {
    int failed = (many_rows ? grouped_matmul : grouped_matvec)(w->bits, x, rows, w->in, w->q, w->d, w->m, w->out, y);
    if (w->bias)
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < w->out; o++) y[(size_t)r * w->out + o] += w->bias[o];
    return failed;
}

/* Every layer of a forward pass for `rows` tokens, in one call: the calls FusedForward would make
 * from Python, in the same order, without a return to Python between them. x [rows, dim] is the
 * residual stream; h [rows, dim] holds the first layer's attention norm of x on entry and the
 * final norm on return. many_rows: MATMUL_ROWS (native.py) or more rows, for the matrix-matrix kernel.
 * Returns -1 when it could not allocate its scratch space. */
int decoder_layers(const Layer *layers, int n_layers, int rows, int many_rows, int n_heads, int n_kv, int head_dim,
                   int max_seq, float eps, const float *cos_table, const float *sin_table,
                   const int64_t *positions, const int64_t *slots, float *x, float *h) {
    const int dim = layers[0].wqkv.in, inter = layers[0].w2.in;
    const size_t qkv_width = layers[0].wqkv.out, mixed_width = layers[0].wo.in;
    float *qkv = malloc(rows * (qkv_width + mixed_width + dim + 3 * (size_t)inter) * sizeof(float));
    if (!qkv) return -1;
    float *mixed = qkv + rows * qkv_width, *delta = mixed + rows * mixed_width;
    float *gate_up = delta + (size_t)rows * dim, *act = gate_up + (size_t)rows * 2 * inter;
    int failed = 0;
    for (int i = 0; i < n_layers && !failed; i++) {
        const Layer *l = layers + i;
        failed = linear(&l->wqkv, h, rows, many_rows, qkv)
              || attention(qkv, rows, cos_table, sin_table, positions, slots, l->k_cache, l->v_cache,
                           n_heads, n_kv, head_dim, max_seq, mixed)
              || linear(&l->wo, mixed, rows, many_rows, delta);
        if (failed) break;
        add_rms_norm(x, delta, l->ffn_norm, eps, rows, dim, h);
        failed = linear(&l->w13, h, rows, many_rows, gate_up);
        if (failed) break;
        silu_mul(gate_up, rows, inter, act);
        failed = linear(&l->w2, act, rows, many_rows, delta);
        if (!failed) add_rms_norm(x, delta, l->next_norm, eps, rows, dim, h);
    }
    free(qkv);
    return failed ? -1 : 0;
}
