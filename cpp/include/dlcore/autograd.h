#pragma once
// Reverse- and forward-mode automatic differentiation.
//
// Note [Autograd graph]
//   Each differentiable op that sees an input requiring grad (in grad mode)
//   gives its output a Node: the op's VJP as a closure over the tensors it
//   saved, plus one Edge per input (to the input's own Node, or to the leaf
//   tensor that accumulates the gradient). A Node never holds its own output
//   (saved outputs are stored as history-free aliases), so there are no
//   reference cycles and a graph dies with its last output.
//
// Note [One definition per op]
//   An op states its forward, its VJP and its JVP together through
//   `differentiable(...)` in the op's own file. VJPs and JVPs are written with
//   differentiable ops, so with create_graph=True the backward pass is itself
//   recorded and second derivatives come for free.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dlcore/tensor.h"

namespace dlcore {

struct Edge {
  std::shared_ptr<Node> node;         // non-leaf input
  std::shared_ptr<TensorImpl> leaf;   // leaf input that requires grad
  bool valid() const { return node || leaf; }
};

using VjpFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;
using GradHook = std::function<Tensor(const Tensor&)>;

struct Node {
  const char* op = "";              // the op's registered name, e.g. "mul"
  std::string name() const;         // e.g. "MulBackward" (built on demand: not on the hot path)
  std::vector<Edge> next;           // one per op input
  VjpFn vjp;                        // empty once released
  std::vector<Tensor> saved;        // tensors whose versions are checked
  std::vector<uint64_t> saved_versions;
  std::vector<GradHook> pre_hooks;  // hooks on the output tensor's gradient
  std::weak_ptr<TensorImpl> retained;  // output tensor that asked for retain_grad()
  Shape out_shape;
  DType out_dtype = DType::Float32;
  bool is_view = false;
  bool released = false;
  // engine scratch for one backward pass (see run_backward)
  int pending = 0;
  bool visited = false;
  Tensor grad_buffer;
};

// ---- modes ----
bool grad_enabled();
void set_grad_enabled(bool on);
struct GradModeGuard {
  explicit GradModeGuard(bool on) : prev_(grad_enabled()) { set_grad_enabled(on); }
  ~GradModeGuard() { set_grad_enabled(prev_); }
  bool prev_;
};
bool forward_ad_enabled();       // tangents propagate (inside jvp)
void set_forward_ad_enabled(bool on);
struct ForwardADGuard {
  explicit ForwardADGuard(bool on) : prev_(forward_ad_enabled()) { set_forward_ad_enabled(on); }
  ~ForwardADGuard() { set_forward_ad_enabled(prev_); }
  bool prev_;
};

struct LeafHooks {
  std::vector<GradHook> hooks;
};

// ---- recording ----
using JvpFn = std::function<Tensor(const std::vector<Tensor>& tangents)>;

namespace detail {
bool any_requires_grad(std::initializer_list<Tensor> inputs);  // and grad mode is on
bool any_tangent(std::initializer_list<Tensor> inputs);        // and forward AD is on
// Attaches the node and/or tangent to `out` (which the forward computed with recording off).
Tensor record(const char* name, std::initializer_list<Tensor> inputs, Tensor out, bool rec, VjpFn vjp, bool tan,
              const JvpFn& jvp, std::initializer_list<Tensor> saved, bool is_view);
}  // namespace detail

// Runs `forward`; when grad mode is on and an input requires grad, the output
// gets a Node whose backward is `vjp` (one gradient per input, undefined =
// none); when an input carries a tangent (inside jvp), the output's tangent is
// jvp(tangents), a missing tangent given as an undefined Tensor (= zero; see
// tangent_sum / if_tangent). `saved`: the tensors the vjp
// reads, version-checked at backward time (Note [Version counter]).
// Without either, this is just forward() (the fast path of every op).
template <class Fwd, class Vjp, class Jvp>
Tensor differentiable(const char* name, std::initializer_list<Tensor> inputs, Fwd&& forward, Vjp&& vjp, Jvp&& jvp,
                      std::initializer_list<Tensor> saved = {}, bool is_view = false) {
  const bool rec = detail::any_requires_grad(inputs);
  const bool tan = detail::any_tangent(inputs);
  if (!rec && !tan) return forward();
  Tensor out;
  {
    GradModeGuard g(false);
    ForwardADGuard f(false);
    out = forward();
  }
  // Only the closures that will be used are materialised (each may allocate).
  return detail::record(name, inputs, std::move(out), rec, rec ? VjpFn(std::forward<Vjp>(vjp)) : VjpFn(), tan,
                        tan ? JvpFn(std::forward<Jvp>(jvp)) : JvpFn(), saved, is_view);
}

// Names of every op that records a node (for the op-coverage test).
const std::vector<std::string>& differentiable_ops();
struct RegisterOp {
  explicit RegisterOp(const char* name);
};

// A history-free alias (same storage, no grad_fn, no tangent): what `detach()` returns.
Tensor detach(const Tensor& t);
// JVP helpers: an undefined tangent means zero. `tangent_sum` adds the defined
// terms (undefined when none); `if_tangent(t, f)` is f(t), or undefined.
Tensor tangent_sum(std::initializer_list<Tensor> terms);
template <class F>
Tensor if_tangent(const Tensor& t, F&& f) {
  return t.defined() ? f(t) : Tensor();
}
// sum `g` down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- engine ----
// Reverse pass from `roots` seeded with `grad_roots` (undefined: ones for a scalar).
// Accumulates into leaves' .grad unless `inputs` is non-empty; then returns the
// gradients of `inputs` instead (autograd.grad), undefined where unused.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                                 bool retain_graph, bool create_graph, const std::vector<Tensor>& inputs = {},
                                 bool allow_unused = false);

void set_requires_grad(const Tensor& t, bool on);
void register_hook(const Tensor& t, GradHook hook);
void retain_grad(const Tensor& t);
// In-place ops call this first: RuntimeError for a leaf that requires grad in
// grad mode, or for in-place writes autograd cannot follow.
void check_inplace(const Tensor& t, const char* op);
// After an in-place op computed `result` (= the new value of `t`, with history):
// copy its values into t and move t's history onto the result's node.
void rebase_history(const Tensor& t, const Tensor& result);

}  // namespace dlcore
