// Compiled time loops for rnnkit's fused SimpleRNN, GRU and LSTM kernels.
//
// The Python kernels (simple_rnn.py, gru.py, lstm.py) do the work that is one big matrix
// product for all steps (x W, and after the backward loop dW, dU, dx) with torch. What is
// left is the recurrence itself: per step, one small product with U and a few element-wise
// operations, which from Python cost a dispatch each. Here each whole loop is one call:
//
//   SimpleRNN  forward  a_t = act(a_t + h_{t-1} U)            a_t holds x_t W + b on entry
//              backward dz_t = g_t act'(a_t);  g_{t-1} (+)= dz_t U^T
//   GRU, LSTM  the same shape, with the gates of gru.py and lstm.py (their docstrings have
//              the formulas; the comments below name the same quantities).
//
// Batch rows are independent in a recurrence, so threads split the batch: each runs the
// whole time loop over its own rows, with no synchronisation between steps (a forward pass
// on too small a batch splits the units instead, see split_forward). The threads are
// OpenMP's; the module is loaded after torch, so they are torch's own: one runtime, whose
// workers, still spinning after torch's last operation, pick the work up at once. (A second
// runtime's threads would find both cores busy with those spinning workers.)
//
// Buffers are time-major, (T, B, width), C-contiguous, float32 or float64; the layout of each
// is the Python kernel's. Nothing here allocates.
//
// Members: an ensemble of `members` models of one architecture runs as one loop over all
// their rows, grouped member-major (rows [m B_m, (m + 1) B_m) are member m's). Each member
// has its own packed U (the members' panels back to back), narrow W and bias, and GRU
// recurrent bias; a thread's rows are run a member's part at a time (`split_batch`).

#include <Python.h>

#include <cstdint>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace {

// ---- vectors: one register's worth --------------------------------------------------------
// The width of the build's vector registers: 64 bytes with AVX-512 (16 floats, 8 doubles), 32
// with AVX2, else 16 (SSE2, NEON). A wider GCC vector than the registers is split by the
// compiler into halves kept on the stack, with scalar-times-vector broadcasts built in memory:
// measured, 64-byte vectors in the AVX2 build made an LSTM 30x slower than in the AVX-512 one.

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX2__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif
// Vector registers: 32 with AVX-512 and on AArch64, else 16; see `gemm` for what they hold.
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr int kRegisters = 32;
#else
constexpr int kRegisters = 16;
#endif

template <typename T> struct Vec;
template <> struct Vec<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
  typedef int32_t bits __attribute__((vector_size(kVectorBytes)));
};
template <> struct Vec<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
  typedef int64_t bits __attribute__((vector_size(kVectorBytes)));
};
template <typename T> using V = typename Vec<T>::type;
template <typename T> constexpr int kLanes = kVectorBytes / sizeof(T);

template <typename T> inline V<T> load(const T* p) {
  V<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T> inline void store(T* p, V<T> v) { std::memcpy(p, &v, sizeof v); }
// The first n lanes (the rest zero), for a row's last, partial vector: masked loads and
// stores where the CPU has them (AVX-512, AVX2), else lane by lane. Not a memcpy of n
// elements: that is a call, and with a call in the loops the compiler spills registers around
// it; measured on Zen 4, masked, LSTM(50) trained 1.5x faster (every row ends in a partial
// vector) and LSTM(128) 1.2x.
#if defined(__AVX512F__)
inline V<float> load(const float* p, int n) {
  return (V<float>)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
inline V<double> load(const double* p, int n) {
  return (V<double>)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
}
inline void store(float* p, V<float> v, int n) {
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
}
inline void store(double* p, V<double> v, int n) {
  _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);
}
#elif defined(__AVX2__)
inline __m256i first_lanes(int n, float) {  // all ones in the lanes below n, of 8
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i first_lanes(int n, double) {  // ... of 4
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline V<float> load(const float* p, int n) {
  return (V<float>)_mm256_maskload_ps(p, first_lanes(n, 0.0f));
}
inline V<double> load(const double* p, int n) {
  return (V<double>)_mm256_maskload_pd(p, first_lanes(n, 0.0));
}
inline void store(float* p, V<float> v, int n) {
  _mm256_maskstore_ps(p, first_lanes(n, 0.0f), (__m256)v);
}
inline void store(double* p, V<double> v, int n) {
  _mm256_maskstore_pd(p, first_lanes(n, 0.0), (__m256d)v);
}
#else
template <typename T> inline V<T> load(const T* p, int n) {
  V<T> v = {};
  for (int i = 0; i < kLanes<T>; i++) {
    if (i < n) v[i] = p[i];
  }
  return v;
}
template <typename T> inline void store(T* p, V<T> v, int n) {
  for (int i = 0; i < kLanes<T>; i++) {
    if (i < n) p[i] = v[i];
  }
}
#endif

// f(j, n) over elements [lo, hi) of a row, n = kLanes except for the last, partial vector.
template <typename T, typename F> inline void over_range(int lo, int hi, F f) {
  int j = lo;
  for (; j + kLanes<T> <= hi; j += kLanes<T>) f(j, kLanes<T>);
  if (j < hi) f(j, hi - j);
}
template <typename T, typename F> inline void over_row(int width, F f) {
  over_range<T>(0, width, f);
}

// ---- exp, and the activations written with it ----------------------------------------------
// exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln 2 / 2, e^r by its Taylor series (to 1 ulp
// or so: float degree 7, double degree 13).

template <typename T> inline V<T> vexp(V<T> x);

template <> inline V<float> vexp<float>(V<float> x) {
  typedef V<float> v;
  typedef Vec<float>::bits bits;
  x = x < -87.0f ? v{} - 87.0f : x;
  x = x > 88.0f ? v{} + 88.0f : x;
  v n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  v r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 = 0.693359375 - 2.12194440e-4
  v p = v{} + 1.0f / 5040;
  const float c[] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
  for (float k : c) p = p * r + k;
  bits e = (__builtin_convertvector(n, bits) + 127) << 23;
  v scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

template <> inline V<double> vexp<double>(V<double> x) {
  typedef V<double> v;
  typedef Vec<double>::bits bits;
  x = x < -708.0 ? v{} - 708.0 : x;
  x = x > 709.0 ? v{} + 709.0 : x;
  v n = (x * 1.4426950408889634074 + 6755399441055744.0) - 6755399441055744.0;
  v r = x - n * 0.693147180369123816490 - n * 1.90821492927058770002e-10;
  double c[14] = {1.0};
  for (int k = 1; k < 14; k++) c[k] = c[k - 1] / k;
  v p = v{} + c[13];
  for (int k = 12; k >= 0; k--) p = p * r + c[k];
  bits e = (__builtin_convertvector(n, bits) + 1023) << 52;
  v scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

// The activation codes rnnkit.kernels.compiled.ACTIVATIONS passes.
enum Activation { kLinear = 0, kTanh = 1, kSigmoid = 2, kRelu = 3 };

template <typename T> inline V<T> activate(V<T> x, int act) {
  switch (act) {
    case kTanh:  // 2 sigmoid(2x) - 1
      return T(2) / (T(1) + vexp<T>(T(-2) * x)) - T(1);
    case kSigmoid:
      return T(1) / (T(1) + vexp<T>(-x));
    case kRelu:
      return x > T(0) ? x : V<T>{};
    default:
      return x;
  }
}

// act'(z) from the output a = act(z).
template <typename T> inline V<T> slope(V<T> a, int act) {
  switch (act) {
    case kTanh:
      return T(1) - a * a;
    case kSigmoid:
      return a * (T(1) - a);
    case kRelu:
      return a > T(0) ? V<T>{} + T(1) : V<T>{};
    default:
      return V<T>{} + T(1);
  }
}

// ---- C (+)= A B for a few rows: the per-step product with U or U^T ------------------------
// B is packed once per call into panels of kPanel vectors' width, each (K, width) contiguous,
// the last one zero-padded: a step then streams U in order. R rows by NP panels accumulate in
// registers over the whole of K. Measured on AVX-512 (Zen 4), one thread: 8 rows of one
// panel run at 95-100% of the FMA peak for K = 128 (4 rows by 4 vectors of the unpacked
// matrix: 75%), and 16 rows by 1024 columns at 90% (unpacked: 70%). Fewer rows take more
// panels at a time, to keep enough independent sums in flight.

constexpr int kPanel = 2;
template <typename T> constexpr int kWidth = kPanel * kLanes<T>;
// Rows of A a tile takes at most: 8 rows by one panel is 16 sums in registers, 4 rows 8; with
// the panel's row and a broadcast, 8 rows fit only in 32 registers.
constexpr int kTileRows = kRegisters >= 32 ? 8 : 4;

// Elements of the packed copy of a (k, n) matrix.
template <typename T> long packed_size(int k_size, int n_size) {
  return (long)k_size * ((n_size + kWidth<T> - 1) / kWidth<T>) * kWidth<T>;
}

// b[k * sk + j * sn] -> panels (see above).
template <typename T>
void pack(const T* b, long sk, long sn, int k_size, int n_size, T* panels) {
  constexpr int W = kWidth<T>;
  for (int j = 0; j < n_size; j += W) {
    T* panel = panels + (long)j * k_size;
    const int n = n_size - j < W ? n_size - j : W;
    for (int k = 0; k < k_size; k++) {
      T* to = panel + (long)k * W;
      const T* from = b + k * sk + j;
      if (sn == 1) std::memcpy(to, from, n * sizeof(T));
      for (int w = n; w < W; w++) to[w] = T(0);
    }
    if (sn != 1) {  // b's columns in order, each written down the panel
      for (int w = 0; w < n; w++) {
        const T* column = b + (j + w) * sn;
        for (int k = 0; k < k_size; k++) panel[(long)k * W + w] = column[k * sk];
      }
    }
  }
}

// C[:R, j:j + NP * W] (+)= A[:R, :K] (NP panels from `panel`); only the first `valid`
// columns of C are read and written.
template <typename T, int R, int NP>
inline void tile(const T* a, long lda, const T* panel, T* c, long ldc, int k_size, int valid,
                 bool add) {
  constexpr int L = kLanes<T>, W = kWidth<T>, NV = NP * kPanel;
  const long panel_size = (long)k_size * W;
  V<T> acc[R][NV];
  for (int v = 0; v < NV; v++) {
    const int n = valid - v * L < L ? valid - v * L : L;
    for (int r = 0; r < R; r++) {
      if (!add || n <= 0) {
        acc[r][v] = V<T>{};
      } else {
        acc[r][v] = n == L ? load(c + r * ldc + v * L) : load(c + r * ldc + v * L, n);
      }
    }
  }
  for (int k = 0; k < k_size; k++) {
    V<T> row[NV];
    for (int p = 0; p < NP; p++)
      for (int v = 0; v < kPanel; v++)
        row[p * kPanel + v] = load(panel + p * panel_size + (long)k * W + v * L);
    for (int r = 0; r < R; r++) {
      T x = a[r * lda + k];
      for (int v = 0; v < NV; v++) acc[r][v] += x * row[v];
    }
  }
  for (int v = 0; v < NV; v++) {
    const int n = valid - v * L < L ? valid - v * L : L;
    if (n <= 0) break;
    for (int r = 0; r < R; r++) {
      if (n == L) {
        store(c + r * ldc + v * L, acc[r][v]);
      } else {
        store(c + r * ldc + v * L, acc[r][v], n);
      }
    }
  }
}

template <typename T, int R>
inline void rows(const T* a, long lda, const T* panels, T* c, long ldc, int k_size, int n_size,
                 bool add) {
  constexpr int W = kWidth<T>;
  constexpr int NP = R >= 4 ? 1 : R == 2 ? 2 : 4;
  int j = 0;
  for (; j + NP * W <= n_size; j += NP * W)
    tile<T, R, NP>(a, lda, panels + (long)j * k_size, c + j, ldc, k_size, NP * W, add);
  for (; j < n_size; j += W)  // the panels left, the last maybe partial
    tile<T, R, 1>(a, lda, panels + (long)j * k_size, c + j, ldc, k_size, n_size - j, add);
}

// C[m, n] (+)= A[m, k] B[k, n], B packed; leading dimensions in elements.
template <typename T>
void gemm(const T* a, long lda, const T* panels, T* c, long ldc, int m, int k, int n, bool add) {
  int i = 0;
  if (kTileRows >= 8) {
    for (; i + 8 <= m; i += 8) rows<T, 8>(a + i * lda, lda, panels, c + i * ldc, ldc, k, n, add);
  }
  for (; i + 4 <= m; i += 4) rows<T, 4>(a + i * lda, lda, panels, c + i * ldc, ldc, k, n, add);
  for (; i + 2 <= m; i += 2) rows<T, 2>(a + i * lda, lda, panels, c + i * ldc, ldc, k, n, add);
  for (; i < m; i++) rows<T, 1>(a + i * lda, lda, panels, c + i * ldc, ldc, k, n, add);
}

// ---- threads: each takes a contiguous share of the batch rows ------------------------------

// The member of batch row `row`: rows [m * batch / members, (m + 1) * batch / members) are
// member m's (0 for an empty batch).
inline int member_of(int row, int batch, int members) {
  const int per = batch / members;
  return per > 0 ? row / per : 0;
}

// body(first, last) on a thread's rows, in pieces of one member each: the whole loop runs
// over each piece.
template <typename F> void split_batch(int batch, int threads, int members, F body) {
  const int share = batch / members;  // rows a member
  auto pieces = [&](int first, int last) {
    if (members <= 1 || share <= 0) {
      body(first, last);
      return;
    }
    while (first < last) {
      int end = (first / share + 1) * share;
      if (end > last) end = last;
      body(first, end);
      first = end;
    }
  };
  if (threads > batch) threads = batch;
  if (threads <= 1) {
    pieces(0, batch);
    return;
  }
#ifdef _OPENMP
  int per = (batch + threads - 1) / threads;
#pragma omp parallel num_threads(threads)
  {
    int first = omp_get_thread_num() * per;
    int last = first + per < batch ? first + per : batch;
    if (first < last) pieces(first, last);
  }
#else  // built without OpenMP: one thread
  pieces(0, batch);
#endif
}

inline bool kept(const uint8_t* mask, int t, int batch, int row) {
  return mask == nullptr || mask[(long)t * batch + row];
}

// A thread's share of a forward loop: batch rows [first, last), units [lo, hi) of every gate.
struct Share {
  int first, last, lo, hi;
  bool sync;  // shares of units: wait for the other threads after each step
};

// Threads split the batch when it is wide enough (4 rows a thread or more): each runs the
// whole loop over its rows, with no synchronisation. A smaller batch (predicting one
// sequence) is split by units instead, in whole panels: each thread computes its units' share
// of every gate, product and element-wise step, and the threads wait for each other after
// every step, since the next step reads all of h_t. Several members always split the batch:
// a share's rows are then one member's.
template <typename T, typename F>
void split_forward(int batch, int units, int threads, int members, F body) {
  constexpr int W = kWidth<T>;
  const int panels = units / W;
  if (members == 1 && threads > 1 && batch < 4 * threads && units % W == 0 &&
      panels >= threads) {
#ifdef _OPENMP
    const int per = (panels + threads - 1) / threads;
#pragma omp parallel num_threads(threads)
    {
      int lo = omp_get_thread_num() * per * W;
      int hi = lo + per * W < units ? lo + per * W : units;
      if (lo > hi) lo = hi;  // an empty share still joins every step's wait
      body(Share{0, batch, lo, hi, true});
    }
    return;
#endif
  }
  split_batch(batch, threads, members,
              [&](int first, int last) { body(Share{first, last, 0, units, false}); });
}

inline void step_done(const Share& share) {
  if (share.sync) {
#pragma omp barrier
  }
}

// rows of C (+)= rows of A times U (packed; `gates` blocks of `units` columns), for a share's
// rows and units.
template <typename T>
inline void gate_products(const T* a, const T* u, T* c, int gates, int units, const Share& s) {
  const int width = gates * units, rows_n = s.last - s.first;
  const T* in = a + (long)s.first * units;
  T* out = c + (long)s.first * width;
  if (!s.sync) {
    gemm<T>(in, units, u, out, width, rows_n, units, width, true);
    return;
  }
  for (int g = 0; g < gates && s.lo < s.hi; g++) {
    const int col = g * units + s.lo;
    gemm<T>(in, units, u + (long)col * units, out + col, width, rows_n, units, s.hi - s.lo, true);
  }
}

// ---- narrow inputs: x W + b, dW and db inside the loops -----------------------------------
// With a few input features (a price, a temperature), x W is a skinny product: as one GEMM
// for all steps it is a pass over the whole (T, B, width) buffer, and in backward x^T dz and
// the bias' sum over steps are two more, each reading all of dz. Inside the loops they cost
// `features` FMAs per element of a row that is in cache anyway. The Python kernels pass
// these for at most `NARROW_INPUTS` features (compiled.py); x is nullptr otherwise.

template <typename T> struct Narrow {
  const T* x;     // (T, B, features), time-major; nullptr: the buffers hold x W + b already
  const T* w;     // (features, width)
  const T* bias;  // (width,) or nullptr
  T* grads;       // (B, features + 1, width): each batch row's share of [dW; db], added to
  int features;

  // Member m's W and bias, of `members` stacked: (members, features, width), (members, width).
  Narrow member(int m, int width) const {
    Narrow n = *this;
    if (x != nullptr) {
      n.w += (long)m * features * width;
      if (bias != nullptr) n.bias += (long)m * width;
    }
    return n;
  }
};

// out[r, g * units + j] = b + x[t, r] W for a share's rows and units of each of `gates`
// blocks of `units` columns.
template <typename T>
inline void project(const Narrow<T>& in, int t, int batch, int gates, int units,
                    const Share& s, T* out) {
  const int width = gates * units;
  for (int r = s.first; r < s.last; r++) {
    const T* xr = in.x + ((long)t * batch + r) * in.features;
    T* row = out + (long)r * width;
    for (int g = 0; g < gates; g++) {
      over_range<T>(g * units + s.lo, g * units + s.hi, [&](int j, int w) {
        V<T> v = in.bias != nullptr ? load(in.bias + j, w) : V<T>{};
        for (int d = 0; d < in.features; d++) v += xr[d] * load(in.w + (long)d * width + j, w);
        store(row + j, v, w);
      });
    }
  }
}

// Row r's [dW; db] += [x[t, r]^T; 1] dz in columns [col, col + n) of `width`, dz being that
// row's gradients of those columns of x W + b.
template <typename T>
inline void accumulate_inputs(const Narrow<T>& in, int t, int batch, int r, int width, int col,
                              int n, const T* dz) {
  const T* xr = in.x + ((long)t * batch + r) * in.features;
  T* acc = in.grads + (long)r * (in.features + 1) * width + col;
  T* db = acc + (long)in.features * width;
  over_row<T>(n, [&](int j, int w) {
    V<T> g = load(dz + j, w);
    store(db + j, load(db + j, w) + g, w);
    for (int d = 0; d < in.features; d++) {
      T* dw = acc + (long)d * width + j;
      store(dw, load(dw, w) + xr[d] * g, w);
    }
  });
}

// ---- SimpleRNN -----------------------------------------------------------------------------
// a, h: (T + 1, B, H); a[1:] holds x W + b on entry (or the loop makes it: `in`) and a_t on
// return; a[0] = h[0] = h_0.
// h is a itself when there is no mask, else the states (h_t = m_t ? a_t : h_{t-1}).
// u: U, (H, H), packed; the backward loops take U^T packed. (`pack` makes both.)

template <typename T>
void simple_rnn_forward(T* a, T* h, const T* u_all, Narrow<T> in_all, const uint8_t* mask,
                        int steps, int batch, int units, int act, int threads, int members) {
  const long slab = (long)batch * units;
  split_forward<T>(batch, units, threads, members, [=](const Share& s) {
    const int m = member_of(s.first, batch, members);
    const T* u = u_all + m * packed_size<T>(units, units);
    const Narrow<T> in = in_all.member(m, units);
    for (int t = 1; t <= steps; t++) {
      T* a_t = a + t * slab;
      const T* prev = h + (t - 1) * slab;
      if (in.x != nullptr) project<T>(in, t - 1, batch, 1, units, s, a_t);
      gate_products<T>(prev, u, a_t, 1, units, s);
      for (int r = s.first; r < s.last; r++) {
        T* row = a_t + (long)r * units;
        const T* held = prev + (long)r * units;
        T* out = h + t * slab + (long)r * units;
        const bool keep = kept(mask, t - 1, batch, r);
        over_range<T>(s.lo, s.hi, [&](int j, int w) {
          V<T> av = activate<T>(load(row + j, w), act);
          store(row + j, av, w);
          if (mask != nullptr) store(out + j, keep ? av : load(held + j, w), w);
        });
      }
      step_done(s);
    }
  });
}

// g: (T + 1, B, H). On entry g[t] is the output's gradient at t (accumulate) or only g[T] is
// set (not); on return g[t], t >= 1, is dz_t and g[0] dL/dh_0. With `in.x`, in.grads gathers
// [dW; db] too.
template <typename T>
void simple_rnn_backward(T* g, const T* a, const T* ut_all, Narrow<T> in, const uint8_t* mask,
                         int steps, int batch, int units, int act, bool accumulate, int threads,
                         int members) {
  const long slab = (long)batch * units;
  split_batch(batch, threads, members, [=](int first, int last) {
    const T* ut = ut_all + member_of(first, batch, members) * packed_size<T>(units, units);
    const int n = last - first;
    for (int t = steps; t >= 1; t--) {
      T* g_t = g + t * slab + (long)first * units;
      T* back = g + (t - 1) * slab + (long)first * units;
      const T* a_t = a + t * slab + (long)first * units;
      for (int r = 0; r < n; r++) {
        T* dz = g_t + (long)r * units;
        T* to = back + (long)r * units;
        if (!kept(mask, t - 1, batch, first + r)) {  // held: the gradient skips the cell
          over_row<T>(units, [&](int j, int w) {
            V<T> carry = load(dz + j, w);
            store(to + j, accumulate ? load(to + j, w) + carry : carry, w);
            store(dz + j, V<T>{}, w);
          });
          continue;
        }
        const T* out = a_t + (long)r * units;
        over_row<T>(units, [&](int j, int w) {
          store(dz + j, load(dz + j, w) * slope<T>(load(out + j, w), act), w);
          if (!accumulate && mask != nullptr) store(to + j, V<T>{}, w);
        });
        if (in.x != nullptr) accumulate_inputs<T>(in, t - 1, batch, first + r, units, 0, units, dz);
      }
      gemm<T>(g_t, units, ut, back, units, n, units, units, accumulate || mask != nullptr);
    }
  });
}

// ---- GRU (reset_after) ---------------------------------------------------------------------
// zrh: (T, B, 3H), on entry x W + [b_zr + b'_zr, b_h]; on return [z, r, hu_h] with
// hu_h = h_{t-1} U_h + b'_h (bias_h: b'_h, or nullptr for none). n: (T, B, H) gets the
// candidates.
// h: (T + 1, B, H), h[0] = h_0. diff: (T, B, H), h_{t-1} - n_t. u: (H, 3H).

template <typename T>
void gru_forward(T* zrh, T* n_all, T* h, T* diff, const T* u_all, const T* bias_h_all,
                 Narrow<T> in_all, const uint8_t* mask, int steps, int batch, int units, int act,
                 int sigma, int threads, int members) {
  const long slab = (long)batch * units;
  const int width = 3 * units;
  split_forward<T>(batch, units, threads, members, [=](const Share& s) {
    const int m = member_of(s.first, batch, members);
    const T* u = u_all + m * packed_size<T>(units, width);
    const T* bias_h = bias_h_all != nullptr ? bias_h_all + (long)m * units : nullptr;
    const Narrow<T> in = in_all.member(m, width);
    for (int t = 0; t < steps; t++) {
      T* gates = zrh + (long)t * batch * width;
      const T* prev = h + t * slab;
      if (in.x != nullptr) project<T>(in, t, batch, 3, units, s, gates);
      for (int r = s.first; r < s.last; r++) {  // block h: x W_h + b_h out, b'_h in
        T* block = gates + (long)r * width + 2 * units;
        T* cand = n_all + t * slab + (long)r * units;
        over_range<T>(s.lo, s.hi, [&](int j, int w) {
          store(cand + j, load(block + j, w), w);
          store(block + j, bias_h != nullptr ? load(bias_h + j, w) : V<T>{}, w);
        });
      }
      gate_products<T>(prev, u, gates, 3, units, s);
      for (int r = s.first; r < s.last; r++) {
        T* z = gates + (long)r * width;
        T* rg = z + units;
        const T* hu = z + 2 * units;
        const long at = t * slab + (long)r * units;
        T* cand = n_all + at;
        T* dif = diff + at;
        const T* before = prev + (long)r * units;
        T* next = h + slab + at;
        const bool keep = kept(mask, t, batch, r);
        over_range<T>(s.lo, s.hi, [&](int j, int w) {
          V<T> zv = activate<T>(load(z + j, w), sigma);
          V<T> rv = activate<T>(load(rg + j, w), sigma);
          store(z + j, zv, w);
          store(rg + j, rv, w);
          V<T> nv = activate<T>(load(cand + j, w) + rv * load(hu + j, w), act);
          V<T> p = load(before + j, w);
          V<T> d = p - nv;
          store(cand + j, nv, w);
          store(dif + j, d, w);
          store(next + j, keep ? nv + zv * d : p, w);  // n + z (h_{t-1} - n)
        });
      }
      step_done(s);
    }
  });
}

// g: (T + 1, B, H) as for SimpleRNN; on return g[0] is dL/dh_0. d: (T, B, 3H) gets
// [dz', dr', dn' r] and dn: (T, B, H) dn' (zero for held steps). ut: U^T, (3H, H). With
// `in.x`, in.grads gathers [dW; db] too, from [dz', dr', dn'].
template <typename T>
void gru_backward(T* g, T* d, T* dn, const T* zrh, const T* n_all, const T* diff,
                  const T* ut_all, Narrow<T> in, const uint8_t* mask, int steps, int batch,
                  int units, int act, int sigma, bool accumulate, int threads, int members) {
  const long slab = (long)batch * units;
  const int width = 3 * units;
  split_batch(batch, threads, members, [=](int first, int last) {
    const T* ut = ut_all + member_of(first, batch, members) * packed_size<T>(width, units);
    const int rows_n = last - first;
    for (int t = steps - 1; t >= 0; t--) {
      T* back = g + t * slab + (long)first * units;
      T* d_t = d + (long)t * batch * width + (long)first * width;
      for (int r = 0; r < rows_n; r++) {
        const long at = t * slab + (long)(first + r) * units;
        const T* g_r = g + slab + at;
        T* to = back + (long)r * units;
        T* d_r = d_t + (long)r * width;
        T* dn_r = dn + at;
        const T* gates = zrh + (long)t * batch * width + (long)(first + r) * width;
        if (!kept(mask, t, batch, first + r)) {  // held: all of g goes to h_{t-1}
          over_row<T>(units, [&](int j, int w) {
            V<T> carry = load(g_r + j, w);
            store(to + j, accumulate ? load(to + j, w) + carry : carry, w);
            store(dn_r + j, V<T>{}, w);
            store(d_r + j, V<T>{}, w);
            store(d_r + units + j, V<T>{}, w);
            store(d_r + 2 * units + j, V<T>{}, w);
          });
          continue;
        }
        const T* n_r = n_all + at;
        const T* dif = diff + at;
        over_row<T>(units, [&](int j, int w) {
          V<T> gv = load(g_r + j, w);
          V<T> z = load(gates + j, w), rv = load(gates + units + j, w);
          V<T> hu = load(gates + 2 * units + j, w);
          V<T> carry = gv * z;  // the direct path h_{t-1} -> h_t
          store(to + j, accumulate ? load(to + j, w) + carry : carry, w);
          V<T> dnv = (gv - carry) * slope<T>(load(n_r + j, w), act);  // g (1 - z) act'(n)
          store(dn_r + j, dnv, w);
          store(d_r + j, gv * load(dif + j, w) * slope<T>(z, sigma), w);
          store(d_r + units + j, dnv * hu * slope<T>(rv, sigma), w);
          store(d_r + 2 * units + j, dnv * rv, w);
        });
        if (in.x != nullptr) {
          accumulate_inputs<T>(in, t, batch, first + r, width, 0, 2 * units, d_r);
          accumulate_inputs<T>(in, t, batch, first + r, width, 2 * units, units, dn_r);
        }
      }
      gemm<T>(d_t, width, ut, back, units, rows_n, width, units, true);
    }
  });
}

// ---- LSTM ----------------------------------------------------------------------------------
// gates: (T, B, 4H), on entry x W + b; on return [i, f, g, o] = σ(z_i), σ(z_f), act(z_c),
// σ(z_o). h, c: (T + 1, B, H), row 0 h_0, c_0. new_c: c' before the mask (c itself when
// unmasked). squashed: (T, B, H), act(c'). u: (H, 4H).

template <typename T>
void lstm_forward(T* gates, T* h, T* c, T* new_c, T* squashed, const T* u_all,
                  Narrow<T> in_all, const uint8_t* mask, int steps, int batch, int units, int act,
                  int sigma, int threads, int members) {
  const long slab = (long)batch * units;
  const int width = 4 * units;
  split_forward<T>(batch, units, threads, members, [=](const Share& s) {
    const int m = member_of(s.first, batch, members);
    const T* u = u_all + m * packed_size<T>(units, width);
    const Narrow<T> in = in_all.member(m, width);
    for (int t = 0; t < steps; t++) {
      T* z = gates + (long)t * batch * width;
      if (in.x != nullptr) project<T>(in, t, batch, 4, units, s, z);
      gate_products<T>(h + t * slab, u, z, 4, units, s);
      for (int r = s.first; r < s.last; r++) {
        T* zr = z + (long)r * width;
        const long at = t * slab + (long)r * units;
        const bool keep = kept(mask, t, batch, r);
        over_range<T>(s.lo, s.hi, [&](int j, int w) {
          V<T> i = activate<T>(load(zr + j, w), sigma);
          V<T> f = activate<T>(load(zr + units + j, w), sigma);
          V<T> gc = activate<T>(load(zr + 2 * units + j, w), act);
          V<T> o = activate<T>(load(zr + 3 * units + j, w), sigma);
          store(zr + j, i, w);
          store(zr + units + j, f, w);
          store(zr + 2 * units + j, gc, w);
          store(zr + 3 * units + j, o, w);
          V<T> c_prev = load(c + at + j, w);
          V<T> cv = f * c_prev + i * gc;
          V<T> sq = activate<T>(cv, act);
          store(new_c + slab + at + j, cv, w);
          store(squashed + at + j, sq, w);
          if (keep) {
            store(h + slab + at + j, o * sq, w);
            if (new_c != c) store(c + slab + at + j, cv, w);
          } else {
            store(h + slab + at + j, load(h + at + j, w), w);
            store(c + slab + at + j, c_prev, w);
          }
        });
      }
      step_done(s);
    }
  });
}

// gh: (T + 1, B, H) as g for SimpleRNN; gc: (B, H), dL/dc_T on entry (zeros if none), dL/dc_0
// on return. dz: (T, B, 4H) gets [dz_i, dz_f, dz_c, dz_o] (zero for held steps). ut: (4H, H).
// With `in.x`, in.grads gathers [dW; db] too.
template <typename T>
void lstm_backward(T* gh, T* gc, T* dz, const T* gates, const T* c, const T* squashed,
                   const T* ut_all, Narrow<T> in, const uint8_t* mask, int steps, int batch,
                   int units, int act, int sigma, bool accumulate, int threads, int members) {
  const long slab = (long)batch * units;
  const int width = 4 * units;
  split_batch(batch, threads, members, [=](int first, int last) {
    const T* ut = ut_all + member_of(first, batch, members) * packed_size<T>(width, units);
    const int rows_n = last - first;
    for (int t = steps - 1; t >= 0; t--) {
      T* back = gh + t * slab + (long)first * units;
      T* dz_t = dz + (long)t * batch * width + (long)first * width;
      for (int r = 0; r < rows_n; r++) {
        const long at = t * slab + (long)(first + r) * units;
        const T* gh_r = gh + slab + at;
        T* to = back + (long)r * units;
        T* gc_r = gc + (long)(first + r) * units;
        T* d_r = dz_t + (long)r * width;
        if (!kept(mask, t, batch, first + r)) {  // held: both gradients go straight back
          over_row<T>(units, [&](int j, int w) {
            V<T> carry = load(gh_r + j, w);
            store(to + j, accumulate ? load(to + j, w) + carry : carry, w);
            for (int k = 0; k < 4; k++) store(d_r + k * units + j, V<T>{}, w);
          });
          continue;
        }
        const T* zr = gates + (long)t * batch * width + (long)(first + r) * width;
        over_row<T>(units, [&](int j, int w) {
          V<T> i = load(zr + j, w), f = load(zr + units + j, w);
          V<T> gv = load(zr + 2 * units + j, w), o = load(zr + 3 * units + j, w);
          V<T> s = load(squashed + at + j, w);
          V<T> ghv = load(gh_r + j, w);
          V<T> gcv = load(gc_r + j, w) + ghv * o * slope<T>(s, act);  // all that reaches c'
          store(d_r + j, gcv * gv * slope<T>(i, sigma), w);
          store(d_r + units + j, gcv * load(c + at + j, w) * slope<T>(f, sigma), w);
          store(d_r + 2 * units + j, gcv * i * slope<T>(gv, act), w);
          store(d_r + 3 * units + j, ghv * s * slope<T>(o, sigma), w);
          store(gc_r + j, gcv * f, w);
          if (!accumulate) store(to + j, V<T>{}, w);
        });
        if (in.x != nullptr) accumulate_inputs<T>(in, t, batch, first + r, width, 0, width, d_r);
      }
      gemm<T>(dz_t, width, ut, back, units, rows_n, width, units, true);
    }
  });
}

}  // namespace

// ---- the C entry points rnnkit.kernels.compiled calls (ctypes), f32 and f64 ---------------

#define RNNKIT_BOTH(name, signature, call)                                    \
  extern "C" void rnnkit_##name##_f32 signature(float) { name<float> call; }  \
  extern "C" void rnnkit_##name##_f64 signature(double) { name<double> call; }

// x, w, bias, grads and nx (its features) make a Narrow; x nullptr for none.
#define NARROW(T) const T *x, const T *w, const T *bias, T *grads
#define SIMPLE_FORWARD(T)                                                                    \
  (T* a, T* h, const T* u, NARROW(T), const uint8_t* m, int s, int b, int n, int act, int nx, \
   int th, int mem)
#define SIMPLE_BACKWARD(T)                                                                  \
  (T* g, const T* a, const T* ut, NARROW(T), const uint8_t* m, int s, int b, int n, int act, \
   int acc, int nx, int th, int mem)
#define GRU_FORWARD(T)                                                                     \
  (T* zrh, T* cand, T* h, T* diff, const T* u, const T* bh, NARROW(T), const uint8_t* m, int s, \
   int b, int n, int act, int sig, int nx, int th, int mem)
#define GRU_BACKWARD(T)                                                                    \
  (T* g, T* d, T* dn, const T* zrh, const T* cand, const T* diff, const T* ut, NARROW(T),  \
   const uint8_t* m, int s, int b, int n, int act, int sig, int acc, int nx, int th, int mem)
#define LSTM_FORWARD(T)                                                                      \
  (T* gates, T* h, T* c, T* nc, T* sq, const T* u, NARROW(T), const uint8_t* m, int s, int b, \
   int n, int act, int sig, int nx, int th, int mem)
#define LSTM_BACKWARD(T)                                                                 \
  (T* gh, T* gc, T* dz, const T* gates, const T* c, const T* sq, const T* ut, NARROW(T),  \
   const uint8_t* m, int s, int b, int n, int act, int sig, int acc, int nx, int th, int mem)
#define PACK(T) (const T* b, long sk, long sn, int k, int n, T* panels)

RNNKIT_BOTH(pack, PACK, (b, sk, sn, k, n, panels))
#define IN {x, w, bias, grads, nx}
RNNKIT_BOTH(simple_rnn_forward, SIMPLE_FORWARD, (a, h, u, IN, m, s, b, n, act, th, mem))
RNNKIT_BOTH(simple_rnn_backward, SIMPLE_BACKWARD,
            (g, a, ut, IN, m, s, b, n, act, acc != 0, th, mem))
RNNKIT_BOTH(gru_forward, GRU_FORWARD,
            (zrh, cand, h, diff, u, bh, IN, m, s, b, n, act, sig, th, mem))
RNNKIT_BOTH(gru_backward, GRU_BACKWARD,
            (g, d, dn, zrh, cand, diff, ut, IN, m, s, b, n, act, sig, acc != 0, th, mem))
RNNKIT_BOTH(lstm_forward, LSTM_FORWARD,
            (gates, h, c, nc, sq, u, IN, m, s, b, n, act, sig, th, mem))
RNNKIT_BOTH(lstm_backward, LSTM_BACKWARD,
            (gh, gc, dz, gates, c, sq, ut, IN, m, s, b, n, act, sig, acc != 0, th, mem))

extern "C" long rnnkit_packed_size_f32(int k, int n) { return packed_size<float>(k, n); }
extern "C" int rnnkit_vector_bytes() { return kVectorBytes; }
// The loops' calling convention, which rnnkit.kernels.compiled checks on loading: 2 added the
// members count (a build of the older source would read it as nothing and mix members up).
extern "C" int rnnkit_loops_version() { return 2; }
extern "C" long rnnkit_packed_size_f64(int k, int n) { return packed_size<double>(k, n); }

// A Python module in name only, so that setuptools builds and installs the library like any
// extension; rnnkit loads it with ctypes.
#ifndef RNNKIT_MODULE
#define RNNKIT_MODULE _loops
#endif
#define RNNKIT_CAT(a, b) a##b
#define RNNKIT_INIT(name) RNNKIT_CAT(PyInit_, name)
#define RNNKIT_STR(x) #x
#define RNNKIT_NAME(x) RNNKIT_STR(x)

static PyModuleDef module = {
    PyModuleDef_HEAD_INIT,   RNNKIT_NAME(RNNKIT_MODULE),
    "rnnkit's compiled time loops (called through ctypes).",
    -1,      nullptr, nullptr, nullptr, nullptr, nullptr};

extern "C" PyMODINIT_FUNC RNNKIT_INIT(RNNKIT_MODULE)(void) { return PyModule_Create(&module); }
