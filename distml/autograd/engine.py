"""The backward pass: an iterative walk of the graph in reverse topological order."""
import itertools
import sys

from distml._backend import get_array_module
from distml.tensor import Tensor

# The profiler's per-node wrapper, `node_profiler(node) -> node.backward timed`: None except while
# distml.profiler.profile records.
node_profiler = None


def _count_of_a_sole_reference():
    """What sys.getrefcount says of an object that one local variable alone holds: 2 (the local and
    the call's argument), or less where the interpreter lends the argument its reference (3.14)."""
    alone = object()
    return sys.getrefcount(alone)


_SOLE_REFERENCE = _count_of_a_sole_reference()


def _children(node):
    """What `node` sends gradients to: other nodes first, then leaves, so that in the reversed
    post-order each leaf comes right after its last producer (DDP overlaps on this)."""
    nodes, leaves = [], []
    for edge in node.next_edges:
        if edge is not None:
            (leaves if isinstance(edge, Tensor) else nodes).append(edge)
    return iter(nodes + leaves)


def _topological_order(roots):
    """Nodes and leaf tensors reachable from `roots`, each after everything that feeds it."""
    order, visited = [], set()
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        if isinstance(root, Tensor):
            order.append(root)
            continue
        stack = [(root, _children(root))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    if isinstance(child, Tensor):
                        order.append(child)
                    else:
                        stack.append((child, _children(child)))
                        break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def _apply_hooks(hooks, grad):
    for hook in hooks:
        result = hook(Tensor(grad))
        if result is not None:
            grad = result.array
    return grad


def _accumulate_leaf(leaf, grad, owned=False):
    """Add `grad` into `leaf.grad`. An `owned` grad (an array nothing else refers to) becomes the
    first `.grad` as it is, where its type and dtype are the leaf's; any other is copied."""
    if leaf._hooks:
        grad, owned = _apply_hooks(leaf._hooks, grad), False
    if grad.shape != leaf.array.shape:
        raise RuntimeError(f"internal error: gradient of shape {grad.shape} for a leaf of shape {leaf.array.shape}")
    if leaf.grad is None:
        owned = owned and type(grad) is type(leaf.array) and grad.dtype == leaf.array.dtype
        leaf.grad = Tensor(grad if owned else grad.astype(leaf.array.dtype, copy=True))
    else:
        leaf.grad.array += grad
    for hook in leaf._post_hooks or ():
        hook(leaf)


def run_backward(tensors, grads, retain_graph=False, inputs=None):
    """Propagate `grads` (arrays) from `tensors` to the leaves.

    With `inputs`, return the gradients of those tensors instead of accumulating into
    `.grad` (this is `autograd.grad`).
    """
    pending = {}  # node -> its gradient (a list of one per output for nodes with several), leaf -> gradient
    captured = None if inputs is None else {id(t): None for t in inputs}
    capture_slots = {} if inputs is None else {(t.grad_fn, t.output_nr): id(t) for t in inputs if t.grad_fn is not None}

    def send(edge, grad, slot):
        if isinstance(edge, Tensor) or edge.n_outputs == 1:
            pending[edge] = pending[edge] + grad if edge in pending else grad
            return
        slots = pending.setdefault(edge, [None] * edge.n_outputs)
        slots[slot] = grad if slots[slot] is None else slots[slot] + grad

    roots = []
    for tensor, grad in zip(tensors, grads):
        if not tensor.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        edge = tensor.grad_fn or tensor
        send(edge, grad, tensor.output_nr)
        roots.append(edge)

    def observe(node, grad):
        """Run `node`'s tensor hooks on its output gradient(s), fill its retained and captured ones;
        return the gradient(s) the hooks leave."""
        output_grads = grad if node.n_outputs > 1 else [grad]
        for slot, hooks in (node.hooks or {}).items():
            if output_grads[slot] is not None:
                output_grads[slot] = _apply_hooks(hooks, output_grads[slot])
        for slot, ref in (node.retained or {}).items():
            if output_grads[slot] is not None and ref() is not None:
                _accumulate_leaf(ref(), output_grads[slot])
        for slot, output_grad in enumerate(output_grads):
            if (node, slot) in capture_slots:
                captured[capture_slots[node, slot]] = output_grad
        return output_grads if node.n_outputs > 1 else output_grads[0]

    def propagate(node, grad):
        """Run `node`'s backward on its output gradient(s); send each input's gradient on."""
        if node.hooks or node.retained or capture_slots:
            grad = observe(node, grad)
        if node.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors "
                "after they have already been freed). Saved intermediate values of the graph are freed "
                "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
                "backward through the graph a second time or if you need to access saved tensors after "
                "calling backward.")
        if node.saved_versions:
            node.check_versions()
        backward = node.backward if node_profiler is None else node_profiler(node)
        if node.n_outputs > 1:
            input_grads = backward(*_zeros_for_missing(grad, node.output_specs))
        else:
            input_grads = backward(grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if not retain_graph:
            node.release()
        for edge, slot, input_grad in zip(node.next_edges, node.next_slots or itertools.repeat(0), input_grads):
            if edge is not None and input_grad is not None:
                send(edge, input_grad, slot)

    for node in _topological_order(roots):
        grad = pending.pop(node, None)
        if grad is None:
            continue
        if not isinstance(node, Tensor):
            propagate(node, grad)  # in a function, so that no local here keeps the gradients it sent
        elif captured is None:
            # Held by `grad` alone (and owning its memory), the array is no other tensor's or
            # gradient's: the leaf may keep it without a copy.
            owned = grad.base is None and sys.getrefcount(grad) == _SOLE_REFERENCE
            _accumulate_leaf(node, grad, owned)
        elif id(node) in captured:
            captured[id(node)] = grad
    if captured is not None:
        return [captured[id(t)] for t in inputs]
    return None


def _zeros_for_missing(grads, specs):
    """One gradient per output: zeros of the output's shape and dtype where none arrived."""
    xp = get_array_module(next(g for g in grads if g is not None))
    return [xp.zeros(shape, dtype) if g is None else g for g, (shape, dtype) in zip(grads, specs)]


def ones_like_output(tensor):
    if tensor.array.size != 1:
        raise RuntimeError("grad can be implicitly created only for scalar outputs")
    return get_array_module(tensor.array).ones_like(tensor.array)
