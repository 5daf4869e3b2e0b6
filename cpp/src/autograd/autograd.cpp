// Recording (Note [Autograd graph]) and the reverse-mode engine.
#include "dlcore/autograd.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "dlcore/ops.h"

namespace dlcore {

namespace {
thread_local bool g_grad_enabled = true;
thread_local bool g_forward_ad = false;

std::vector<std::string>& registry() {
  static std::vector<std::string> names;
  return names;
}

std::string backward_name(const char* op) {
  std::string out;
  bool up = true;
  for (const char* p = op; *p; ++p) {
    if (*p == '_') {
      up = true;
      continue;
    }
    out += up ? static_cast<char>(std::toupper(static_cast<unsigned char>(*p))) : *p;
    up = false;
  }
  return out + "Backward";
}

// A new TensorImpl over the same data: lets an op return "its input" with a
// history of its own.
Tensor alias(const Tensor& t) {
  Tensor a = Tensor::make_view(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
  a.impl()->is_view = true;
  return a;
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }
bool forward_ad_enabled() { return g_forward_ad; }
void set_forward_ad_enabled(bool on) { g_forward_ad = on; }

const std::vector<std::string>& differentiable_ops() { return registry(); }
std::string Node::name() const { return backward_name(op); }
RegisterOp::RegisterOp(const char* name) { registry().emplace_back(name); }

Tensor detach(const Tensor& t) {
  Tensor a = Tensor::make_view(t.storage(), t.shape(), t.strides(), t.offset(), t.dtype());
  return a;
}

Tensor tangent_sum(std::initializer_list<Tensor> terms) {
  Tensor acc;
  for (const Tensor& t : terms) {
    if (!t.defined()) continue;
    acc = acc.defined() ? binary(BinaryOp::Add, acc, t) : t;
  }
  return acc;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < g.dim(); ++d)
    if (d < lead || (shape[d - lead] == 1 && g.shape()[d] != 1)) dims.push_back(d);
  Tensor s = dims.empty() ? g : sum(g, dims, true);
  return reshape(s, shape);
}

namespace detail {

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool any_tangent(std::initializer_list<Tensor> inputs) {
  if (!g_forward_ad) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.impl()->tangent) return true;
  return false;
}

Tensor record(const char* name, std::initializer_list<Tensor> inputs, Tensor out, bool rec, VjpFn vjp, bool tan,
              const JvpFn& jvp, std::initializer_list<Tensor> saved, bool is_view) {
  for (const Tensor& in : inputs)
    if (in.defined() && in.impl() == out.impl()) {
      out = alias(out);
      break;
    }
  if (is_view) out.impl()->is_view = true;
  if (rec && is_floating(out.dtype())) {
    auto node = std::make_shared<Node>();
    node->op = name;
    for (const Tensor& in : inputs) {
      Edge e;
      if (in.defined() && in.requires_grad()) {
        if (in.grad_fn()) e.node = in.grad_fn();
        else e.leaf = in.impl_ptr();
      }
      node->next.push_back(std::move(e));
    }
    node->vjp = std::move(vjp);
    for (const Tensor& s : saved) {
      node->saved.push_back(s);
      node->saved_versions.push_back(s.storage()->version());
    }
    node->out_shape = out.shape();
    node->out_dtype = out.dtype();
    node->is_view = is_view;
    out.impl()->grad_fn = std::move(node);
    out.impl()->requires_grad = true;
  }
  if (tan && is_floating(out.dtype())) {
    std::vector<Tensor> ts;
    for (const Tensor& in : inputs) {
      if (in.defined() && in.impl()->tangent) ts.emplace_back(in.impl()->tangent);
      else ts.emplace_back();  // zero tangent: rules skip its term
    }
    Tensor t;
    {
      GradModeGuard g(false);
      ForwardADGuard f(false);
      t = jvp(ts);
      if (!t.defined()) t = zeros(out.shape(), out.dtype(), out.device());
      if (t.shape() != out.shape()) t = contiguous(expand(t, out.shape()));
      t = to_dtype(t, out.dtype());
    }
    out.impl()->tangent = t.impl_ptr();
  }
  return out;
}

}  // namespace detail

void set_requires_grad(const Tensor& t, bool on) {
  DLCORE_CHECK(!on || is_floating(t.dtype()), TypeError,
               "only floating-point tensors can require gradients, got dtype ", dtype_name(t.dtype()));
  DLCORE_CHECK(t.is_leaf() || on, RuntimeError,
               "requires_grad can only be turned off on leaf tensors; use detach() on a result with history");
  t.impl()->requires_grad = on;
}

void register_hook(const Tensor& t, GradHook hook) {
  DLCORE_CHECK(t.requires_grad(), RuntimeError,
               "cannot register a hook on a tensor that does not require grad (shape ", shape_str(t.shape()), ")");
  if (t.grad_fn()) {
    t.grad_fn()->pre_hooks.push_back(std::move(hook));
  } else {
    if (!t.impl()->hooks) t.impl()->hooks = std::make_shared<LeafHooks>();
    t.impl()->hooks->hooks.push_back(std::move(hook));
  }
}

void retain_grad(const Tensor& t) {
  DLCORE_CHECK(t.requires_grad(), RuntimeError, "retain_grad() on a tensor that does not require grad");
  if (t.grad_fn()) t.grad_fn()->retained = t.impl_ptr();
}

void check_inplace(const Tensor& t, const char* op) {
  if (!g_grad_enabled) return;
  DLCORE_CHECK(!(t.requires_grad() && t.is_leaf()), RuntimeError, "a leaf tensor that requires grad (shape ",
               shape_str(t.shape()), ") is used in the in-place operation ", op,
               "; do it inside `with dlcore.no_grad():` or on a clone");
  // Only called on the autograd path (an operand requires grad): writing into a
  // view would not update the history of the tensor it views.
  DLCORE_CHECK(!t.impl()->is_view, RuntimeError, "in-place ", op, " on a view (shape ", shape_str(t.shape()),
               ") with an operand that requires grad is not supported by dlcore's autograd; "
               "use an out-of-place op (e.g. dlcore.where or cat)");
}

void rebase_history(const Tensor& t, const Tensor& result) {
  {
    GradModeGuard g(false);
    ForwardADGuard f(false);
    copy_(t, result);
  }
  t.impl()->grad_fn = result.grad_fn();
  t.impl()->requires_grad = result.requires_grad();
  t.impl()->tangent = result.impl()->tangent;
}

// ---- engine ----

namespace {

void accumulate(std::shared_ptr<TensorImpl>& slot, const Tensor& g, bool create_graph) {
  if (!slot) {
    // Always a fresh contiguous tensor: g may be an expanded view or shared with
    // another leaf's gradient (with create_graph the clone keeps g's history).
    slot = create_graph ? clone(g).impl_ptr() : clone(detach(g)).impl_ptr();
    return;
  }
  Tensor cur(slot);
  if (create_graph) {
    slot = binary(BinaryOp::Add, cur, g).impl_ptr();
  } else {
    GradModeGuard off(false);
    binary_(BinaryOp::Add, cur, g);
  }
}

// g passed through the hooks in order; a hook returning a tensor replaces g, which
// must keep g's shape and device.
Tensor run_hooks(const std::vector<GradHook>& hooks, Tensor g) {
  for (const auto& h : hooks) {
    Tensor r = h(g);
    if (!r.defined()) continue;
    DLCORE_CHECK(r.device() == g.device() && r.shape() == g.shape(), ValueError,
                 "a gradient hook returned a tensor of shape ", shape_str(r.shape()), " on ", r.device().str(),
                 " for a gradient of shape ", shape_str(g.shape()), " on ", g.device().str());
    g = r;
  }
  return g;
}

void check_grad_shape(const char* what, const Shape& expect, const Tensor& g) {
  DLCORE_CHECK(g.shape() == expect, ValueError, what, ": gradient of shape ", shape_str(g.shape()),
               " does not match the tensor's shape ", shape_str(expect));
}

}  // namespace

std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                                 bool retain_graph, bool create_graph, const std::vector<Tensor>& inputs,
                                 bool allow_unused) {
  DLCORE_CHECK(roots.size() == grad_roots.size(), ValueError, "backward: got ", roots.size(), " outputs but ",
               grad_roots.size(), " gradients");
  const bool capture = !inputs.empty();
  std::unordered_map<const TensorImpl*, size_t> leaf_slot;
  std::unordered_map<const Node*, size_t> node_slot;
  std::vector<std::shared_ptr<TensorImpl>> results(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    DLCORE_CHECK(inputs[i].requires_grad(), RuntimeError, "grad: input ", i, " (shape ",
                 shape_str(inputs[i].shape()), ") does not require grad");
    if (inputs[i].grad_fn()) node_slot[inputs[i].grad_fn().get()] = i;
    else leaf_slot[inputs[i].impl()] = i;
  }

  GradModeGuard mode(create_graph);
  ForwardADGuard no_fw(false);

  auto deliver_leaf = [&](const std::shared_ptr<TensorImpl>& leaf, Tensor g) {
    if (leaf->hooks) g = run_hooks(leaf->hooks->hooks, g);
    if (g.dtype() != leaf->dtype) g = to_dtype(g, leaf->dtype);
    if (capture) {
      auto it = leaf_slot.find(leaf.get());
      if (it != leaf_slot.end()) accumulate(results[it->second], g, create_graph);
      return;
    }
    accumulate(leaf->grad, g, create_graph);
  };

  // Seed and count dependencies (Kahn's algorithm over the reachable graph). The
  // counters and gradient buffers live in the nodes (pending, grad_buffer) for the
  // duration of this pass; `keep` holds every visited node and resets them at the end.
  std::vector<std::shared_ptr<Node>> keep;
  struct Reset {
    std::vector<std::shared_ptr<Node>>& nodes;
    ~Reset() {
      for (auto& n : nodes) {
        n->pending = 0;
        n->visited = false;
        n->grad_buffer = Tensor();
      }
    }
  } reset{keep};
  auto add_into = [](Tensor& slot, const Tensor& g) { slot = slot.defined() ? binary(BinaryOp::Add, slot, g) : g; };
  std::vector<Node*> roots_nodes;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    DLCORE_CHECK(r.requires_grad(), RuntimeError, "element ", i, " of the tensors to differentiate (shape ",
                 shape_str(r.shape()), ") does not require grad and has no grad_fn");
    Tensor g = grad_roots[i];
    if (!g.defined()) {
      DLCORE_CHECK(r.numel() == 1, RuntimeError,
                   "grad can be implicitly created only for scalar outputs; got an output of shape ",
                   shape_str(r.shape()), ": pass `gradient=` (a tensor of that shape)");
      g = ones(r.shape(), r.dtype(), r.device());
    }
    check_grad_shape("backward", r.shape(), g);
    DLCORE_CHECK(g.device() == r.device(), ValueError, "backward: the gradient is on ", g.device().str(),
                 " but the output of shape ", shape_str(r.shape()), " is on ", r.device().str());
    if (!r.grad_fn()) {
      deliver_leaf(r.impl_ptr(), g);
      continue;
    }
    Node* n = r.grad_fn().get();
    add_into(n->grad_buffer, g);
    if (!n->visited) {
      n->visited = true;
      keep.push_back(r.grad_fn());
      roots_nodes.push_back(n);
    }
  }
  {
    std::vector<Node*> todo = roots_nodes;
    while (!todo.empty()) {
      Node* n = todo.back();
      todo.pop_back();
      for (const Edge& e : n->next) {
        if (!e.node) continue;
        Node* c = e.node.get();
        ++c->pending;
        if (!c->visited) {
          c->visited = true;
          keep.push_back(e.node);
          todo.push_back(c);
        }
      }
    }
  }
  std::vector<Node*> ready;
  for (Node* n : roots_nodes)
    if (n->pending == 0) ready.push_back(n);

  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g = std::move(n->grad_buffer);
    n->grad_buffer = Tensor();
    std::vector<Tensor> grads;
    if (g.defined()) {
      DLCORE_CHECK(!n->released, RuntimeError, "trying to backward through the graph a second time (", n->name(),
                   "): its saved tensors were freed by the first backward; pass retain_graph=True to the first "
                   "backward() if you need to call it twice");
      g = run_hooks(n->pre_hooks, g);
      if (auto t = n->retained.lock()) accumulate(t->grad, g, create_graph);
      if (!node_slot.empty()) {
        auto cs = node_slot.find(n);
        if (cs != node_slot.end()) accumulate(results[cs->second], g, create_graph);
      }
      for (size_t i = 0; i < n->saved.size(); ++i) {
        const uint64_t now = n->saved[i].storage()->version();
        DLCORE_CHECK(now == n->saved_versions[i], RuntimeError,
                     "one of the tensors needed to compute the gradient of ", n->name(), " (shape ",
                     shape_str(n->saved[i].shape()), ") was modified by an in-place operation after it was used: "
                     "its version is ", now, ", expected ", n->saved_versions[i]);
      }
      grads = n->vjp(g);
      if (!retain_graph) {
        n->vjp = nullptr;
        n->saved.clear();
        n->released = true;
      }
    }
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      const bool has = i < grads.size() && grads[i].defined();
      if (e.node) {
        Node* c = e.node.get();
        if (has) add_into(c->grad_buffer, grads[i]);
        if (--c->pending == 0) ready.push_back(c);
      } else if (e.leaf && has) {
        deliver_leaf(e.leaf, grads[i]);
      }
    }
  }

  std::vector<Tensor> out;
  for (size_t i = 0; i < results.size(); ++i) {
    DLCORE_CHECK(results[i] || allow_unused, RuntimeError, "grad: input ", i, " (shape ",
                 shape_str(inputs[i].shape()), ") was not used to compute the outputs; pass allow_unused=True "
                 "to get None for it");
    out.emplace_back(results[i]);
  }
  return out;
}

}  // namespace dlcore
