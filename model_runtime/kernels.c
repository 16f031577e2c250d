/* y = x @ W^T for weights stored in groups of 32, with float32 activations.
 *
 * PyTorch's CPU kernels for 4- and 8-bit weights want bfloat16 activations,
 * which changes a small model's greedy tokens; float16 weights keep them but
 * move four times the bytes of 4-bit ones. These kernels keep both: each
 * group of 32 weights is d * q + m (q 4-bit, GGUF's Q4_1) or d * q (q signed
 * 8-bit, GGUF's Q8_0), so a GGUF checkpoint is held exactly, and the sums run
 * in float32.
 *
 * Built by native.py with -march=x86-64-v3 (AVX2 and FMA) and OpenMP; the
 * OpenMP runtime is the one PyTorch already loaded, so both share threads.
 *
 * Layout: q is [N, K * bits / 8] bytes; a 4-bit group's 16 bytes hold
 * elements 0-15 in their low nibbles and 16-31 in their high ones. d and m
 * are [N, K / 32] floats; m is NULL for 8-bit weights.
 *
 * grouped_matvec, for decode steps: a row of y is the sum over groups of
 * d * (q . x) + m * (sum of x), computed the same way whatever M is, so a
 * request's result never depends on how many others share its batch.
 * grouped_matmul, for a prompt's tokens: see below.
 */
#include <immintrin.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>

#define GROUP 32
#define MAX_TILE 8  /* rows of x per pass: eight accumulators and four weight vectors fit in 16 registers */
#define ROW_BLOCK 16  /* rows of W per block: a block's weights stay in cache while every tile of x passes */
#define PANEL_ROWS 6  /* rows of x per pass of the matrix-matrix kernel: 12 accumulators, 2 weight vectors, 1 input */

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32 q values of one group, as floats. */
static inline __attribute__((always_inline)) void unpack(const int bits, const uint8_t *group, __m256 w[4]) {
    if (bits == 4) {
        __m128i b = _mm_loadu_si128((const __m128i *)group);
        __m128i lo = _mm_and_si128(b, _mm_set1_epi8(15));
        __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(15));
        w[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
        w[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
        w[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
        w[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
    } else {
        for (int h = 0; h < 4; h++)
            w[h] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(group + 8 * h))));
    }
}

/* y[i, n] for the `tile` rows of x starting at x (tile is a constant once inlined). */
static inline __attribute__((always_inline)) void dot_tile(
    const int bits, const int tile, const float *x, const float *sums, int K, const uint8_t *q,
    const float *d, const float *m, int N, int n, float *y) {
    const int groups = K / GROUP, group_bytes = GROUP * bits / 8;
    const uint8_t *qn = q + (size_t)n * groups * group_bytes;
    const float *dn = d + (size_t)n * groups;
    __m256 acc[MAX_TILE];
    for (int i = 0; i < tile; i++) acc[i] = _mm256_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m256 w[4];
        unpack(bits, qn + g * group_bytes, w);
        __m256 scale = _mm256_set1_ps(dn[g]);
        for (int i = 0; i < tile; i++) {
            const float *xg = x + (size_t)i * K + g * GROUP;
            __m256 p = _mm256_mul_ps(w[0], _mm256_loadu_ps(xg));
            p = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xg + 8), p);
            p = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xg + 16), p);
            p = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xg + 24), p);
            acc[i] = _mm256_fmadd_ps(p, scale, acc[i]);
        }
    }
    for (int i = 0; i < tile; i++) {
        float out = hsum(acc[i]);
        if (m) {  /* the minimums' share: sum over groups of m * (sum of the group's inputs) */
            const float *mn = m + (size_t)n * groups, *s = sums + (size_t)i * groups;
            __m256 o = _mm256_setzero_ps();
            int g = 0;
            for (; g + 8 <= groups; g += 8) o = _mm256_fmadd_ps(_mm256_loadu_ps(mn + g), _mm256_loadu_ps(s + g), o);
            out += hsum(o);
            for (; g < groups; g++) out += mn[g] * s[g];
        }
        y[(size_t)i * N + n] = out;
    }
}

static inline __attribute__((always_inline)) void linear(
    const int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m, int N,
    float *y, const float *sums) {
    #pragma omp parallel for schedule(static)
    for (int block = 0; block < N; block += ROW_BLOCK) {
        int end = block + ROW_BLOCK < N ? block + ROW_BLOCK : N;
        for (int i = 0; i < M; i += MAX_TILE) {
            const float *xi = x + (size_t)i * K, *si = sums ? sums + (size_t)i * (K / GROUP) : NULL;
            float *yi = y + (size_t)i * N;
            for (int n = block; n < end; n++) {
                switch (M - i) {  /* one unrolled body per tile height */
                    case 1: dot_tile(bits, 1, xi, si, K, q, d, m, N, n, yi); break;
                    case 2: dot_tile(bits, 2, xi, si, K, q, d, m, N, n, yi); break;
                    case 3: dot_tile(bits, 3, xi, si, K, q, d, m, N, n, yi); break;
                    case 4: dot_tile(bits, 4, xi, si, K, q, d, m, N, n, yi); break;
                    case 5: dot_tile(bits, 5, xi, si, K, q, d, m, N, n, yi); break;
                    case 6: dot_tile(bits, 6, xi, si, K, q, d, m, N, n, yi); break;
                    case 7: dot_tile(bits, 7, xi, si, K, q, d, m, N, n, yi); break;
                    default: dot_tile(bits, 8, xi, si, K, q, d, m, N, n, yi);
                }
            }
        }
    }
}

/* Returns 0, or -1 when it could not allocate its scratch space. */
int grouped_matvec(int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m,
                   int N, float *y) {
    float *sums = NULL;
    if (m) {
        sums = malloc(sizeof(float) * (size_t)M * (K / GROUP));
        if (!sums) return -1;
        for (size_t g = 0; g < (size_t)M * (K / GROUP); g++) {
            float s = 0;
            for (int j = 0; j < GROUP; j++) s += x[g * GROUP + j];
            sums[g] = s;
        }
    }
    if (bits == 4) linear(4, x, M, K, q, d, m, N, y, sums);
    else linear(8, x, M, K, q, d, m, N, y, sums);
    free(sums);
    return 0;
}

/* Many rows of x (a prompt's tokens): unpack 16 rows of W at a time into a
 * float32 panel laid out [K][16], then run a register-blocked product over it,
 * 6 rows of x by 16 outputs, as a float32 GEMM does. The panel holds the
 * weights exactly (d * q + m in one rounding, as a GGUF reader computes them).
 */
static inline __attribute__((always_inline)) void panel_tile(
    const int rows, const float *x, int K, const float *panel, float *out) {
    __m256 acc[PANEL_ROWS][2];
    for (int r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(panel + (size_t)k * 16), b1 = _mm256_loadu_ps(panel + (size_t)k * 16 + 8);
        for (int r = 0; r < rows; r++) {
            __m256 a = _mm256_broadcast_ss(x + (size_t)r * K + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(out + r * 16, acc[r][0]);
        _mm256_storeu_ps(out + r * 16 + 8, acc[r][1]);
    }
}

static inline __attribute__((always_inline)) void unpack_panel(
    const int bits, int K, const uint8_t *q, const float *d, const float *m, int N, int n0, float *panel) {
    const int groups = K / GROUP, group_bytes = GROUP * bits / 8;
    for (int j = 0; j < 16; j++) {
        int n = n0 + j;
        for (int g = 0; g < groups; g++) {
            float values[GROUP];
            if (n < N) {
                __m256 w[4];
                unpack(bits, q + ((size_t)n * groups + g) * group_bytes, w);
                __m256 scale = _mm256_set1_ps(d[(size_t)n * groups + g]);
                __m256 low = _mm256_set1_ps(m ? m[(size_t)n * groups + g] : 0.0f);
                for (int h = 0; h < 4; h++) _mm256_storeu_ps(values + 8 * h, _mm256_fmadd_ps(w[h], scale, low));
            } else {
                for (int t = 0; t < GROUP; t++) values[t] = 0;  /* past the last row: a zero column */
            }
            for (int t = 0; t < GROUP; t++) panel[(size_t)(g * GROUP + t) * 16 + j] = values[t];
        }
    }
}

static inline __attribute__((always_inline)) int gemm(
    const int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m, int N, float *y) {
    int failed = 0;
    #pragma omp parallel
    {
        float *panel = malloc(sizeof(float) * (size_t)K * 16);
        if (!panel) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(static)
        for (int n0 = 0; n0 < N; n0 += 16) {
            if (!panel) continue;
            unpack_panel(bits, K, q, d, m, N, n0, panel);
            float out[PANEL_ROWS * 16];
            for (int i = 0; i < M; i += PANEL_ROWS) {
                int rows = M - i < PANEL_ROWS ? M - i : PANEL_ROWS;
                const float *xi = x + (size_t)i * K;
                switch (rows) {  /* one unrolled body per tile height */
                    case 1: panel_tile(1, xi, K, panel, out); break;
                    case 2: panel_tile(2, xi, K, panel, out); break;
                    case 3: panel_tile(3, xi, K, panel, out); break;
                    case 4: panel_tile(4, xi, K, panel, out); break;
                    case 5: panel_tile(5, xi, K, panel, out); break;
                    default: panel_tile(6, xi, K, panel, out);
                }
                int width = N - n0 < 16 ? N - n0 : 16;
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < width; j++) y[(size_t)(i + r) * N + n0 + j] = out[r * 16 + j];
            }
        }
        free(panel);
    }
    return failed ? -1 : 0;
}

/* Returns 0, or -1 when it could not allocate its scratch space. */
int grouped_matmul(int bits, const float *x, int M, int K, const uint8_t *q, const float *d, const float *m,
                   int N, float *y) {
    return bits == 4 ? gemm(4, x, M, K, q, d, m, N, y) : gemm(8, x, M, K, q, d, m, N, y);
}

/* ---- The rest of a decode step (one token per request), so that a layer is a
 * handful of calls instead of some thirty PyTorch operators, each of which
 * costs more to dispatch than to compute at this size. */

static inline float dot(const float *a, const float *b, int n) {  /* n a multiple of 8 */
    __m256 s = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
    return hsum(s);
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

/* gate_up [rows, 2 * inter] -> out [rows, inter] = silu(gate) * up. */
void silu_mul(const float *gate_up, int rows, int inter, float *out) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < inter; i++) {
            float g = gate_up[(size_t)r * 2 * inter + i], u = gate_up[(size_t)r * 2 * inter + inter + i];
            out[(size_t)r * inter + i] = g / (1.0f + expf(-g)) * u;
        }
}

/* x rotated by its position: x * cos + roll(x, half) * sin, sin's first half negated (model.py's tables). */
static void rope(const float *x, const float *cos_row, const float *sin_row, int head_dim, float *out) {
    int half = head_dim / 2;
    for (int i = 0; i < head_dim; i++) out[i] = x[i] * cos_row[i] + x[(i + half) % head_dim] * sin_row[i];
}

/* For each row (request): rotate its query and key, write key and value at its
 * position in its cache slot, and attend over positions 0..position of that
 * slot. qkv is [rows, (n_heads + 2 * n_kv) * head_dim]; caches are
 * [slots, n_kv, max_seq, head_dim]; out is [rows, n_heads * head_dim].
 * Returns -1 when it could not allocate its scratch space. */
int decode_attention(const float *qkv, int rows, const float *cos_table, const float *sin_table,
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
    int failed = 0;
    const float scale = 1.0f / sqrtf((float)head_dim);
    #pragma omp parallel
    {
        float *scores = malloc(sizeof(float) * (max_seq + head_dim));
        if (!scores) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for collapse(2) schedule(static)
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < n_heads; h++) {
                if (!scores) continue;
                float *q = scores + max_seq;
                int64_t length = positions[r] + 1;
                rope(qkv + (size_t)r * width + h * head_dim, cos_table + positions[r] * head_dim,
                     sin_table + positions[r] * head_dim, head_dim, q);
                size_t base = ((size_t)slots[r] * n_kv + h / (n_heads / n_kv)) * max_seq * head_dim;
                float top = -INFINITY, total = 0;
                for (int64_t t = 0; t < length; t++) {
                    scores[t] = dot(q, k_cache + base + t * head_dim, head_dim) * scale;
                    top = scores[t] > top ? scores[t] : top;
                }
                for (int64_t t = 0; t < length; t++) total += scores[t] = expf(scores[t] - top);
                float *o = out + (size_t)r * n_heads * head_dim + h * head_dim;
                for (int i = 0; i < head_dim; i++) o[i] = 0;
                for (int64_t t = 0; t < length; t++) {
                    __m256 p = _mm256_set1_ps(scores[t] / total);
                    const float *vt = v_cache + base + t * head_dim;
                    for (int i = 0; i < head_dim; i += 8)
                        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + i), _mm256_loadu_ps(o + i)));
                }
            }
        free(scores);
    }
    return failed ? -1 : 0;
}
