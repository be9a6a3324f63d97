// BF16 GEMMs through oneDNN; see bf16_gemm.h.
#include "workers/engine/nn/bf16_gemm.h"

#include <string>
#include <utility>

#include "workers/engine/model/dtype.h"

#if defined(COMPRESSD_HAVE_ONEDNN)
#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#endif

namespace compressd::engine {

void Bf16GemmRef(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
                 int64_t ldy) {
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (int64_t i = 0; i < in; ++i) {
        s += double{BFloat16ToFloatRef(x[r * in + i])} * BFloat16ToFloatRef(w[o * in + i]);
      }
      y[r * ldy + o] = static_cast<float>(s);
    }
  }
}

#if defined(COMPRESSD_HAVE_ONEDNN)

namespace {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* const engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

using dt = dnnl::memory::data_type;

// w [out, in] as the matmul's [in, out] weights: w^T.
dnnl::memory::desc PlainWeights(int64_t in, int64_t out) {
  return dnnl::memory::desc({in, out}, dt::bf16, dnnl::memory::dims{1, in});
}

// The primitive of one shape, on plain weights or (packed) on the layout
// oneDNN prefers; its primitive cache makes a repeated shape cheap.
dnnl::matmul::primitive_desc Describe(int64_t t, int64_t in, int64_t out, int64_t ldy,
                                      bool packed = false) {
  const dnnl::memory::desc src({t, in}, dt::bf16, dnnl::memory::dims{in, 1});
  const dnnl::memory::desc wei =
      packed ? dnnl::memory::desc({in, out}, dt::bf16, dnnl::memory::format_tag::any)
             : PlainWeights(in, out);
  const dnnl::memory::desc dst({t, out}, dt::f32, dnnl::memory::dims{ldy, 1});
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), CpuEngine());
}

void Execute(const dnnl::matmul::primitive_desc& pd, const uint16_t* x, void* w, float* y) {
  const dnnl::engine& engine = CpuEngine();
  dnnl::memory src(pd.src_desc(), engine, const_cast<uint16_t*>(x));
  dnnl::memory wei(pd.weights_desc(), engine, w);
  dnnl::memory dst(pd.dst_desc(), engine, y);
  dnnl::stream stream(engine);
  dnnl::matmul(pd).execute(stream,
                           {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  stream.wait();
}

}  // namespace

absl::Status Bf16GemmAvailable() { return absl::OkStatus(); }

const char* Bf16GemmImplementation() {
  static const std::string* const name = new std::string(Describe(64, 64, 64, 64).impl_info_str());
  return name->c_str();
}

void Bf16Gemm(const uint16_t* x, int64_t t, int64_t in, const uint16_t* w, int64_t out, float* y,
              int64_t ldy) {
  if (t <= 0 || out <= 0) return;
  omp_set_num_threads(1);  // this thread's team: the caller's pool owns the parallelism
  Execute(Describe(t, in, out, ldy), x, const_cast<uint16_t*>(w), y);
}

struct Bf16PackedWeights::Impl {
  int64_t in = 0, out = 0;
  dnnl::memory::desc desc;
  dnnl::memory packed;
};

std::unique_ptr<Bf16PackedWeights> Bf16PackedWeights::Pack(const uint16_t* w, int64_t t, int64_t in,
                                                           int64_t out) {
  omp_set_num_threads(1);
  auto impl = std::make_unique<Impl>();
  impl->in = in;
  impl->out = out;
  impl->desc = Describe(t, in, out, out, /*packed=*/true).weights_desc();
  const dnnl::engine& engine = CpuEngine();
  dnnl::memory plain(PlainWeights(in, out), engine, const_cast<uint16_t*>(w));
  impl->packed = dnnl::memory(impl->desc, engine);
  dnnl::stream stream(engine);
  dnnl::reorder(plain, impl->packed).execute(stream, plain, impl->packed);
  stream.wait();
  return std::unique_ptr<Bf16PackedWeights>(new Bf16PackedWeights(std::move(impl)));
}

int64_t Bf16PackedWeights::in() const { return impl_->in; }
int64_t Bf16PackedWeights::out() const { return impl_->out; }
size_t Bf16PackedWeights::bytes() const { return impl_->desc.get_size(); }

bool Bf16PackedWeights::Gemm(const uint16_t* x, int64_t t, float* y, int64_t ldy) const {
  if (t <= 0) return true;
  omp_set_num_threads(1);
  const dnnl::matmul::primitive_desc pd = Describe(t, impl_->in, impl_->out, ldy, true);
  if (pd.weights_desc() != impl_->desc) return false;
  Execute(pd, x, impl_->packed.get_data_handle(), y);
  return true;
}

#else

struct Bf16PackedWeights::Impl {
  int64_t in = 0, out = 0;
};

std::unique_ptr<Bf16PackedWeights> Bf16PackedWeights::Pack(const uint16_t*, int64_t, int64_t,
                                                           int64_t) {
  return nullptr;
}
int64_t Bf16PackedWeights::in() const { return impl_->in; }
int64_t Bf16PackedWeights::out() const { return impl_->out; }
size_t Bf16PackedWeights::bytes() const { return 0; }
bool Bf16PackedWeights::Gemm(const uint16_t*, int64_t, float*, int64_t) const { return false; }

absl::Status Bf16GemmAvailable() {
  return absl::FailedPreconditionError(
      "compute: bf16 needs a worker built with oneDNN (libdnnl-dev; COMPRESSD_ONEDNN)");
}

const char* Bf16GemmImplementation() { return "none"; }

void Bf16Gemm(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, float*, int64_t) {}

#endif

Bf16PackedWeights::Bf16PackedWeights(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bf16PackedWeights::~Bf16PackedWeights() = default;

}  // namespace compressd::engine
