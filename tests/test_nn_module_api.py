"""The nn.Module surface against torch.nn: the same program runs under both libraries.

Module trees and their traversal order, buffers and parameters (registration, reassignment,
state-dict keys), forward and full backward hooks (call order, arguments, replacements),
the parameter containers, and the small layers and init functions real programs use.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm

import tinygrad_like as tg


def values(x):
    """Tensors (nested in tuples and lists) as nested lists; other values as they are."""
    if isinstance(x, (tuple, list)):
        return [values(v) for v in x]
    if isinstance(x, (tg.Tensor, torch.Tensor)):
        return x.detach().numpy().astype(np.float64).tolist()
    return x


def same(ours, theirs) -> bool:
    """Equal structure and values; floats within a few float32 ulps of the order-1 values
    these programs compute (the two libraries round differently), everything else exactly."""
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)):
        return len(ours) == len(theirs) and all(same(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, float) and isinstance(theirs, float):
        return bool(np.isclose(ours, theirs, rtol=1e-5, atol=1e-6))
    return type(ours) is type(theirs) and ours == theirs


def both(program):
    """Run `program(lib)` under tinygrad_like and torch; the two results must agree."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = program(tg), program(torch)
    assert same(ours, theirs), f"tinygrad_like: {ours}\ntorch:         {theirs}"
    return ours


def tree(lib):
    """A tree with a module registered twice (weight tying) and a None child."""

    class Block(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = lib.nn.LayerNorm(4)
            self.ff = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.ReLU(), lib.nn.Linear(8, 4))

        def forward(self, x):
            return x + self.ff(self.norm(x))

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.nn.Embedding(10, 4)
            self.blocks = lib.nn.ModuleList([Block(), Block()])
            self.missing = None
            self.register_module("head", lib.nn.Linear(4, 10, bias=False))
            self.head.weight = self.embed.weight
            self.shared = self.blocks[0]
            self.register_buffer("scale", lib.ones(4))
            self.register_buffer("cache", lib.zeros(2), persistent=False)

        def forward(self, tokens):
            x = self.embed(tokens) * self.scale
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    return Net()


# ---- the module tree ---------------------------------------------------------------------
def test_traversal_names_and_order_match_torch():
    def program(lib):
        net = tree(lib)
        return {
            "named_modules": [name for name, _ in net.named_modules()],
            "all": [name for name, _ in net.named_modules(remove_duplicate=False)],
            "prefixed": [name for name, _ in net.blocks.named_modules(prefix="blocks")],
            "modules": [type(m).__name__ for m in net.modules()],
            "children": [name for name, _ in net.named_children()],
            "child_types": [type(m).__name__ for m in net.children()],
            "parameters": [name for name, _ in net.named_parameters()],
            "all_parameters": [name for name, _ in
                               net.named_parameters(remove_duplicate=False)],
            "local_parameters": [name for name, _ in net.embed.named_parameters(recurse=False)],
            "count": sum(p.numel() for p in net.parameters()),
            "buffers": [name for name, _ in net.named_buffers()],
            "local_buffers": [name for name, _ in net.named_buffers(prefix="m", recurse=False)],
            "state_dict": list(net.state_dict()),
        }

    result = both(program)
    assert "head.weight" in result["state_dict"] and "cache" not in result["state_dict"]
    assert "shared" in result["all"] and "shared" not in result["named_modules"]


def test_apply_visits_children_before_parents():
    def program(lib):
        seen = []
        net = tree(lib)
        returned = net.apply(lambda m: seen.append(type(m).__name__))
        return seen, returned is net

    assert both(program)[0][-1] == "Net"


def test_apply_initialises_weights():
    def program(lib):
        def init(module):
            if isinstance(module, lib.nn.Linear):
                lib.nn.init.constant_(module.weight, 0.5)
                if module.bias is not None:
                    lib.nn.init.zeros_(module.bias)

        net = tree(lib).apply(init)
        return values(net.blocks[1].ff[2].weight.sum()), values(net.blocks[0].ff[0].bias)

    both(program)


def test_submodule_parameter_and_buffer_lookup():
    def program(lib):
        net = tree(lib)
        found = [type(net.get_submodule("blocks.1.ff.0")).__name__,
                 net.get_submodule("") is net,
                 net.get_parameter("blocks.0.norm.weight") is net.blocks[0].norm.weight,
                 net.get_buffer("scale") is net.scale]
        for lookup, target in ((net.get_submodule, "blocks.7"), (net.get_submodule, "scale"),
                               (net.get_parameter, "blocks.0.norm.nothing"),
                               (net.get_parameter, "scale"), (net.get_buffer, "embed.weight")):
            with pytest.raises(AttributeError) as error:
                lookup(target)
            found.append(str(error.value))
        return found

    both(program)


def test_registration_errors_match_torch():
    def program(lib):
        net = lib.nn.Linear(2, 2)
        errors = []
        for register, name, value in (
                (net.register_buffer, "a.b", lib.zeros(1)),
                (net.register_buffer, "", lib.zeros(1)),
                (net.register_buffer, "in_features", lib.zeros(1)),
                (net.register_buffer, "x", [1.0]),
                (net.register_parameter, "weight2", lib.zeros(1)),
                (net.register_parameter, "forward", lib.nn.Parameter(lib.zeros(1))),
                (net.add_module, "m.n", lib.nn.ReLU()),
                (net.add_module, "m", 3)):
            with pytest.raises((KeyError, TypeError)) as error:
                register(name, value)
            errors.append(type(error.value).__name__)
        with pytest.raises(TypeError):
            net.weight = lib.zeros(2, 2)  # a registered parameter takes only a Parameter
        with pytest.raises(TypeError):
            net.register_parameter("p", lib.zeros(1))
        return errors

    both(program)


# ---- parameters and buffers ----------------------------------------------------------------
def test_reassigning_a_parameter_keeps_its_state_dict_place():
    def program(lib):
        net = lib.nn.Linear(3, 2)
        old = net.weight
        net.weight = lib.nn.Parameter(lib.ones(2, 3))
        keys = list(net.state_dict())
        params = list(net.parameters())
        net.bias = None  # a registered parameter may become None: gone from state and params
        return (keys, any(p is old for p in params), any(p is net.weight for p in params),
                list(net.state_dict()), len(list(net.parameters())), net.bias is None,
                values(net(lib.ones(1, 3))))

    assert both(program)[0] == ["weight", "bias"]


def test_buffers_assignment_none_and_deletion():
    def program(lib):
        net = tree(lib)
        net.scale = lib.full((4,), 2.0)  # a tensor under a buffer's name replaces the buffer
        net.cache = None
        log = [list(net.state_dict())[:2], [name for name, _ in net.named_buffers()],
               values(net.scale)]
        del net.scale
        net.register_buffer("scale", lib.ones(4), persistent=False)
        log.append("scale" in net.state_dict())
        net.register_buffer("scale", lib.ones(4))
        log.append(list(net.state_dict())[-1])
        net.plain = lib.ones(1)  # an unregistered tensor stays a plain attribute
        log.append([name for name, _ in net.named_buffers()])
        return log

    both(program)


def test_buffers_move_and_cast_with_the_module():
    def program(lib):
        net = tree(lib)
        net.register_buffer("steps", lib.zeros((), dtype=lib.int64))
        net.double()
        return [(name, str(b.dtype).split(".")[-1]) for name, b in net.named_buffers()]

    both(program)
    net = tree(tg).to(tg.float64)
    assert net.scale.dtype is tg.float64 and net.embed.weight.dtype is tg.float64
    net.to("interp")  # non-persistent buffers move too
    assert {str(b.device) for b in net.buffers()} == {"interp"}
    assert {str(p.device) for p in net.parameters()} == {"interp"}


def test_load_state_dict_fills_buffers_and_assign_replaces_tensors():
    def program(lib):
        source, target = tree(lib), tree(lib)
        source.scale.fill_(3.0)
        state = source.state_dict()
        target.load_state_dict(state)
        same_object = target.embed.weight
        target.load_state_dict(state, assign=True)
        return (values(target.scale), target.embed.weight is same_object,
                target.embed.weight.requires_grad, type(target.embed.weight).__name__,
                values((target.head.weight - source.head.weight).abs().sum()))

    both(program)


# ---- hooks ---------------------------------------------------------------------------------
def hooked_tree(lib, log: list):
    net = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 2))
    for name, module in net.named_modules():
        module.register_forward_pre_hook(lambda m, args, n=name: log.append(("pre", n,
                                                                             values(args))))
        module.register_forward_hook(lambda m, args, out, n=name: log.append(("fwd", n,
                                                                              values(out))))
        module.register_full_backward_pre_hook(
            lambda m, grad_out, n=name: log.append(("bwd-pre", n, values(grad_out))))
        module.register_full_backward_hook(
            lambda m, grad_in, grad_out, n=name: log.append(("bwd", n, values(grad_in),
                                                             values(grad_out))))
    return net


def test_hooks_run_in_torchs_order_with_its_arguments():
    def program(lib):
        log = []
        lib.manual_seed(0)
        net = hooked_tree(lib, log)
        with lib.no_grad():
            for p in net.parameters():
                p.copy_(lib.linspace(-1, 1, p.numel()).reshape(p.shape))
        x = lib.tensor([[0.1, -0.2, 0.3], [0.5, 0.0, -0.4]], requires_grad=True)
        (net(x) * lib.tensor([1.0, -2.0])).sum().backward()
        log.append(("x.grad", values(x.grad)))
        return log

    log = both(program)
    assert [tuple(entry[:2]) for entry in log if entry[0].startswith("bwd")] == [
        ("bwd-pre", ""), ("bwd-pre", "2"), ("bwd", "2"), ("bwd-pre", "1"), ("bwd", "1"),
        ("bwd-pre", "0"), ("bwd", "0"), ("bwd", "")]


def test_forward_hooks_replace_args_kwargs_and_output():
    def program(lib):
        log = []
        net = lib.nn.Identity()

        class Scale(lib.nn.Module):
            def forward(self, x, factor=1.0):
                return x * factor

        scale = Scale()
        scale.register_forward_pre_hook(lambda m, args: (args[0] + 1,))
        scale.register_forward_pre_hook(
            lambda m, args, kwargs: (args, {**kwargs, "factor": 10.0}), with_kwargs=True)
        handle = scale.register_forward_hook(lambda m, args, out: out - 1)
        scale.register_forward_hook(
            lambda m, args, kwargs, out: log.append(("kwargs", kwargs)), with_kwargs=True)
        scale.register_forward_hook(lambda m, args, out: log.append("first"), prepend=True)
        log.append(values(scale(lib.ones(2), factor=2.0)))
        handle.remove()
        log.append(values(scale(lib.ones(2))))
        with net.register_forward_hook(lambda m, args, out: out * 3):
            log.append(values(net(lib.ones(1))))
        log.append(values(net(lib.ones(1))))
        return log

    both(program)


def test_always_call_forward_hook_runs_when_forward_raises():
    def program(lib):
        log = []

        class Broken(lib.nn.Module):
            def forward(self, x):
                raise ValueError("broken forward")

        broken = Broken()
        broken.register_forward_hook(lambda m, args, out: log.append(("always", out)),
                                     always_call=True)
        broken.register_forward_hook(lambda m, args, out: log.append("never"))
        with pytest.raises(ValueError, match="broken forward"):
            broken(lib.ones(1))
        return log

    assert both(program) == [("always", None)]


def test_full_backward_hook_sees_every_input_and_output():
    """Several inputs (one a tensor needing no grad, one not a tensor) and two outputs, one
    unused: grad_input and grad_output have an entry per argument and per output."""

    def program(lib):
        log = []

        class Two(lib.nn.Module):
            def forward(self, x, y, k):
                return x * y * k, x.exp()

        two = Two()
        two.register_full_backward_pre_hook(lambda m, go: log.append(("pre", values(go))))
        two.register_full_backward_hook(lambda m, gi, go: log.append(("hook", values(gi),
                                                                      values(go))))
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        product, _ = two(x, lib.tensor([3.0, 4.0]), 2)
        product.sum().backward()
        log.append(values(x.grad))
        return log

    both(program)


def test_full_backward_hooks_replace_gradients():
    def program(lib):
        lib.manual_seed(0)
        linear = lib.nn.Linear(2, 2)
        with lib.no_grad():
            linear.weight.copy_(lib.tensor([[1.0, 2.0], [3.0, 4.0]]))
        pre = linear.register_full_backward_pre_hook(lambda m, go: (go[0] * 10,))
        linear.register_full_backward_hook(lambda m, gi, go: (gi[0] + 1,))
        x = lib.tensor([[1.0, -1.0]], requires_grad=True)
        linear(x).sum().backward()
        first = values((x.grad, linear.weight.grad))
        pre.remove()
        x.grad, linear.weight.grad = None, None
        linear(x).sum().backward()
        return first, values((x.grad, linear.weight.grad))

    both(program)


def test_full_backward_hook_when_no_input_needs_grad():
    def program(lib):
        log = []
        linear = lib.nn.Linear(2, 1)
        linear.register_full_backward_hook(lambda m, gi, go: log.append((values(gi),
                                                                        len(go))))
        linear(lib.ones(3, 2)).sum().backward()
        with lib.no_grad():
            linear(lib.ones(3, 2))  # no graph: the hook cannot run
        return log

    assert both(program) == [([None], 1)]
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        linear = tg.nn.Linear(2, 1)
        linear.register_full_backward_hook(lambda m, gi, go: None)
        linear(tg.ones(3, 2)).sum().backward()


def test_backward_hook_errors():
    linear = tg.nn.Linear(2, 2)
    linear.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="Linear: backward hook returned an invalid number of grad_input, got 2, but expected 1"):
        linear(tg.ones(1, 2, requires_grad=True)).sum().backward()
    other = tg.nn.Linear(2, 2)
    other.register_full_backward_pre_hook(lambda m, go: (tg.ones(3),))
    with pytest.raises(RuntimeError, match=r"grad_output\[0\] of \(3,\); expected a Tensor of "
                       r"shape \(1, 2\)"):
        other(tg.ones(1, 2, requires_grad=True)).sum().backward()
    with pytest.raises(NotImplementedError, match="register_full_backward_hook"):
        linear.register_backward_hook(lambda m, gi, go: None)


def test_backward_hooks_on_a_module_called_twice():
    """Each call has its own hook state; a recurrent use sees one hook call per step."""

    def program(lib):
        log = []
        cell = lib.nn.Linear(2, 2)
        with lib.no_grad():
            cell.weight.copy_(lib.tensor([[0.5, -1.0], [2.0, 0.25]]))
            cell.bias.copy_(lib.tensor([0.1, -0.3]))
        cell.register_full_backward_hook(lambda m, gi, go: log.append(values((gi, go))))
        h = lib.tensor([[1.0, 2.0]], requires_grad=True)
        cell(lib.tanh(cell(h))).sum().backward()
        return log, values(h.grad)

    both(program)


def test_a_full_backward_hook_does_not_change_the_gradients_it_returns_none_for():
    tg.manual_seed(0)
    net = tg.nn.Sequential(tg.nn.Linear(3, 5), tg.nn.GELU(), tg.nn.Linear(5, 2))
    x = tg.randn(4, 3, dtype=tg.float64, requires_grad=True)
    net.double()
    net(x).pow(2).sum().backward()
    expected = [x.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]
    x.grad = None
    net.zero_grad()
    for module in net.modules():
        module.register_full_backward_hook(lambda m, gi, go: None)
    net(x).pow(2).sum().backward()
    actual = [x.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


# ---- containers ----------------------------------------------------------------------------
def test_parameter_list_and_dict_match_torch():
    def program(lib):
        class Holder(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.plist = lib.nn.ParameterList([lib.nn.Parameter(lib.ones(2)), lib.zeros(3)])
                self.plist.append(lib.ones(1))
                self.pdict = lib.nn.ParameterDict({"b": lib.nn.Parameter(lib.ones(2, 2))})
                self.pdict["a"] = lib.zeros(4)
                self.pdict.update({"c": lib.ones(1)})

        holder = Holder()
        return (list(holder.state_dict()), len(holder.plist), len(holder.pdict),
                list(holder.pdict.keys()), "a" in holder.pdict,
                all(type(p).__name__ == "Parameter" for p in holder.parameters()),
                [tuple(p.shape) for p in holder.plist[1:]], values(holder.plist[-1]),
                sum(p.numel() for p in holder.parameters()),
                values(holder.pdict.pop("c")), list(holder.state_dict())[-1])

    both(program)


def test_sequential_and_module_list_editing_matches_torch():
    def program(lib):
        seq = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU(), lib.nn.Linear(3, 1))
        sliced = seq[1:]
        del seq[0]
        seq.insert(0, lib.nn.Linear(2, 3))
        layers = lib.nn.ModuleList([lib.nn.ReLU(), lib.nn.Tanh()])
        layers.insert(1, lib.nn.Identity())
        layers += [lib.nn.Sigmoid()]
        popped = layers.pop(0)
        layers[0] = lib.nn.GELU()
        return (list(sliced.state_dict()), list(seq.state_dict()),
                [type(m).__name__ for m in seq], type(popped).__name__,
                [type(m).__name__ for m in layers], [name for name, _ in layers.named_children()],
                type(seq[-1]).__name__)

    both(program)


# ---- layers and init -----------------------------------------------------------------------
def test_layer_reprs_show_torchs_flags():
    def program(lib):
        modules = [lib.nn.ReLU(inplace=True), lib.nn.ReLU(), lib.nn.SiLU(True),
                   lib.nn.LeakyReLU(0.2, inplace=True), lib.nn.Dropout(0.1, inplace=True),
                   lib.nn.Identity(54, unused_argument=0.1), lib.nn.Embedding(5, 3),
                   lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU(True))]
        return [repr(m) for m in modules]

    both(program)


def test_inplace_activations_compute_the_same_values():
    def program(lib):
        x = lib.tensor([-1.0, 0.5, 2.0], requires_grad=True)
        out = lib.nn.ReLU(inplace=True)(x * 1) + lib.nn.LeakyReLU(0.1, True)(x * 1)
        out.sum().backward()
        return values(out), values(x.grad)

    both(program)


def test_embedding_from_pretrained_matches_torch():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)

    def program(lib):
        weights = lib.tensor(table)
        frozen = lib.nn.Embedding.from_pretrained(weights)
        trained = lib.nn.Embedding.from_pretrained(weights, freeze=False, padding_idx=1)
        tokens = lib.tensor([[0, 1], [3, 1]])
        trained(tokens).sum().backward()
        return (values(frozen(tokens)), frozen.weight.requires_grad,
                trained.weight.requires_grad, values(trained.weight.grad), trained.padding_idx,
                repr(trained), list(trained.state_dict()))

    both(program)
    weights = tg.tensor(table)
    with tg.no_grad():
        tg.nn.Embedding.from_pretrained(weights).weight[0, 0] = 100.0
    assert weights[0, 0].item() == 100.0  # shares the given tensor's memory, as PyTorch
    with pytest.raises(ValueError, match="2-D"):
        tg.nn.Embedding.from_pretrained(tg.ones(3))
    with pytest.raises(NotImplementedError, match="max_norm"):
        tg.nn.Embedding.from_pretrained(weights, max_norm=1.0)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_flatten_parameters_is_a_no_op(name):
    def program(lib):
        lib.manual_seed(0)
        rnn = getattr(lib.nn, name)(3, 4, num_layers=2)
        before = [values(p) for p in rnn.parameters()]
        returned = rnn.flatten_parameters()
        return returned, before == [values(p) for p in rnn.parameters()], list(rnn.state_dict())

    both(program)


def test_trunc_normal_samples_the_truncated_distribution():
    """Every draw lies in [a, b]; mean and standard deviation match the truncated normal's
    (closed forms), within six standard errors of a 200,000-sample estimate."""
    cases = [(0.0, 1.0, -2.0, 2.0), (1.0, 2.0, -1.0, 4.0), (0.0, 0.02, -0.04, 0.04),
             (0.0, 1.0, 6.0, 7.0), (0.0, 1.0, -9.0, -8.5)]
    for mean, std, a, b in cases:
        t = tg.nn.init.trunc_normal_(tg.empty(200_000, dtype=tg.float64), mean, std, a, b)
        draws = t.numpy()
        assert draws.min() >= a and draws.max() <= b
        law = truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
        assert abs(draws.mean() - law.mean()) < 6 * law.std() / np.sqrt(draws.size)
        assert abs(draws.std() - law.std()) < 6 * law.std() / np.sqrt(draws.size)


def test_trunc_normal_follows_the_generator_and_validates():
    generator = tg.Generator().manual_seed(5)
    first = tg.nn.init.trunc_normal_(tg.empty(3, 4), std=0.02, generator=generator).numpy()
    generator.manual_seed(5)
    again = tg.nn.init.trunc_normal_(tg.empty(3, 4), std=0.02, generator=generator).numpy()
    np.testing.assert_array_equal(first, again)
    tg.manual_seed(1)
    seeded = tg.nn.init.trunc_normal_(tg.empty(3, 4), std=0.02).numpy()
    tg.manual_seed(1)
    np.testing.assert_array_equal(seeded, tg.nn.init.trunc_normal_(tg.empty(3, 4),
                                                                   std=0.02).numpy())
    with pytest.raises(ValueError, match="empty"):
        tg.nn.init.trunc_normal_(tg.empty(2), a=1.0, b=-1.0)
    param = tg.nn.Parameter(tg.empty(2, 2))
    assert tg.nn.init.trunc_normal_(param) is param and param.requires_grad
