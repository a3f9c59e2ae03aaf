"""rnnkit.optimizers and rnnkit.schedules against Keras 3 (torch backend).

Each check starts Keras variables and torch parameters from the same values, feeds both
the gradients of the same quadratic at their current weights, and compares the weights.
"""

import copy
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnnkit import optimizers, schedules  # noqa: E402

STEPS = 5
SHAPES = [(3, 4), (4,)]


def _initial_weights(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in SHAPES]


def _quadratic_grad(i, w, scale):
    """Gradient of ``scale * sum(c * w**2 / 2 + d * w)`` with fixed c > 0 and d per tensor."""
    rng = np.random.default_rng(100 + i)
    c = rng.uniform(0.5, 2.0, size=w.shape).astype("float32")
    d = rng.normal(size=w.shape).astype("float32")
    return scale * (c * w + d)


def keras_weights(opt, steps=STEPS, scale=1.0, init=None, between=None):
    variables = [keras.Variable(w) for w in (init or _initial_weights())]
    for step in range(steps):
        if between is not None:
            between(step, opt)
        grads = [
            torch.from_numpy(_quadratic_grad(i, v.numpy(), scale)) for i, v in enumerate(variables)
        ]
        opt.apply_gradients(zip(grads, variables, strict=True))
    return [v.numpy() for v in variables]


def _torch_params(init=None):
    return [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in (init or _initial_weights())]


def rnnkit_steps(opt, params, steps=STEPS, scale=1.0, between=None):
    opt.build(params)
    for step in range(steps):
        if between is not None:
            between(step, opt)
        opt.zero_grad()
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(_quadratic_grad(i, p.detach().numpy(), scale))
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def _assert_weights_equal(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def _schedule_pair(name, **kwargs):
    return getattr(schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)


# (optimizer class name, kwargs for both, gradient scale)
CASES = [
    ("SGD", {}, 1.0),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9}, 1.0),
    ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}, 1.0),
    ("SGD", {"learning_rate": 0.05, "weight_decay": 0.1}, 1.0),
    ("Adam", {"learning_rate": 0.05}, 1.0),
    ("Adam", {"learning_rate": 0.05, "amsgrad": True}, 1.0),
    ("Adam", {"learning_rate": 0.05, "weight_decay": 0.2}, 1.0),
    # Tiny gradients: here Keras' and torch's eps placements differ most.
    ("Adam", {"learning_rate": 0.05, "epsilon": 1e-3}, 1e-3),
    ("AdamW", {"learning_rate": 0.05}, 1.0),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "amsgrad": True}, 1.0),
    ("RMSprop", {"learning_rate": 0.01}, 1.0),
    ("RMSprop", {"learning_rate": 0.01, "epsilon": 1e-2}, 1e-2),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}, 1.0),
    ("Adagrad", {"learning_rate": 0.1}, 1.0),
    ("Adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "epsilon": 1e-2}, 0.1),
    ("Adadelta", {"learning_rate": 1.0}, 1.0),
    ("Adadelta", {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-3}, 1.0),
    ("Adamax", {"learning_rate": 0.05}, 1.0),
    ("Adamax", {"learning_rate": 0.05, "epsilon": 1e-2}, 1e-2),
    ("Nadam", {"learning_rate": 0.05}, 1.0),
    ("Nadam", {"learning_rate": 0.05, "beta_1": 0.8, "epsilon": 1e-3}, 1e-3),
    # Clipping: gradients are large (scale 10) so every rule bites.
    ("SGD", {"learning_rate": 0.01, "clipnorm": 1.0}, 10.0),
    ("Adam", {"learning_rate": 0.05, "clipvalue": 0.5}, 10.0),
    ("RMSprop", {"learning_rate": 0.01, "global_clipnorm": 2.0}, 10.0),
    ("SGD", {"learning_rate": 0.01, "momentum": 0.9, "global_clipnorm": 1e4}, 1.0),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "scale"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)
def test_weights_match_keras_after_several_steps(name, kwargs, scale):
    ours = rnnkit_steps(getattr(optimizers, name)(**kwargs), _torch_params(), scale=scale)
    theirs = keras_weights(getattr(keras.optimizers, name)(**kwargs), scale=scale)
    _assert_weights_equal(ours, theirs)
    assert not np.allclose(ours[0], _initial_weights()[0], atol=1e-4), "weights did not move"


SCHEDULED = [
    ("SGD", {"momentum": 0.9}, "ExponentialDecay", {"decay_steps": 2, "decay_rate": 0.5}),
    ("SGD", {"momentum": 0.9, "nesterov": True}, "InverseTimeDecay",
     {"decay_steps": 1, "decay_rate": 0.5, "staircase": True}),
    ("RMSprop", {"momentum": 0.5}, "PiecewiseConstantDecay", None),
    ("Adam", {}, "CosineDecay", {"decay_steps": 4, "alpha": 0.1}),
    ("Adam", {"weight_decay": 0.1}, "CosineDecay",
     {"decay_steps": 3, "warmup_target": 0.1, "warmup_steps": 2}),
    ("Adagrad", {}, "PolynomialDecay", {"decay_steps": 3, "power": 2.0}),
    ("Nadam", {}, "ExponentialDecay", {"decay_steps": 1, "decay_rate": 0.7}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kwargs", "schedule", "schedule_kwargs"),
    SCHEDULED,
    ids=[f"{c[0]}-{c[2]}" for c in SCHEDULED],
)
def test_weights_match_keras_with_a_schedule(name, kwargs, schedule, schedule_kwargs):
    if schedule == "PiecewiseConstantDecay":
        schedule_kwargs = {"boundaries": [0, 2], "values": [0.1, 0.02, 0.005]}
    else:
        schedule_kwargs = {"initial_learning_rate": 0.05, **schedule_kwargs}
    ours_lr, keras_lr = _schedule_pair(schedule, **schedule_kwargs)
    ours_opt = getattr(optimizers, name)(learning_rate=ours_lr, **kwargs)
    ours = rnnkit_steps(ours_opt, _torch_params())
    theirs = keras_weights(getattr(keras.optimizers, name)(learning_rate=keras_lr, **kwargs))
    _assert_weights_equal(ours, theirs)
    assert ours_opt.iterations == STEPS


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
        ("RMSprop", {"momentum": 0.5}),
        ("Adam", {}),
        ("Adagrad", {}),
    ],
)
def test_changing_learning_rate_mid_training_matches_keras(name, kwargs):
    def lower_lr_at_step_2(step, opt):
        if step == 2:
            opt.learning_rate = 0.003

    ours_opt = getattr(optimizers, name)(**kwargs)
    ours = rnnkit_steps(ours_opt, _torch_params(), between=lower_lr_at_step_2)
    theirs = keras_weights(getattr(keras.optimizers, name)(**kwargs), between=lower_lr_at_step_2)
    _assert_weights_equal(ours, theirs)
    assert ours_opt.learning_rate == 0.003


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", {"momentum": 0.9, "nesterov": True}),
        ("Adam", {"amsgrad": True}),
        ("RMSprop", {"momentum": 0.5, "centered": True}),
        ("Adagrad", {}),
        ("Adadelta", {"rho": 0.9}),
        ("Adamax", {}),
        ("Nadam", {}),
    ],
)
def test_resuming_from_state_dict_matches_uninterrupted_keras_run(name, kwargs):
    lr = schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.8)
    first = getattr(optimizers, name)(learning_rate=lr, **kwargs)
    weights = rnnkit_steps(first, _torch_params(), steps=3)
    saved = copy.deepcopy(first.state_dict())
    # A fresh optimizer and fresh parameters, as after restarting the program.
    second = getattr(optimizers, name)(learning_rate=lr, **kwargs)
    second.load_state_dict(saved)  # before build: kept until build()
    params = _torch_params(init=weights)
    second.build(params)
    assert second.iterations == 3
    # Steps 3 and 4 of the same gradient sequence.
    for _ in range(STEPS - 3):
        second.zero_grad()
        for i, p in enumerate(params):
            p.grad = torch.from_numpy(_quadratic_grad(i, p.detach().numpy(), 1.0))
        second.step()
    keras_lr = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.8)
    theirs = keras_weights(getattr(keras.optimizers, name)(learning_rate=keras_lr, **kwargs))
    _assert_weights_equal([p.detach().numpy() for p in params], theirs)


def test_apply_gradients_with_pairs_matches_keras():
    params = _torch_params()
    opt = optimizers.Adam(learning_rate=0.05)
    for _ in range(STEPS):
        grads = [torch.from_numpy(_quadratic_grad(i, p.detach().numpy(), 1.0))
                 for i, p in enumerate(params)]  # fmt: skip
        iterations = opt.apply_gradients(zip(grads, params, strict=True))
    assert iterations == STEPS
    theirs = keras_weights(keras.optimizers.Adam(learning_rate=0.05))
    _assert_weights_equal([p.detach().numpy() for p in params], theirs)


def test_tiny_dense_model_trains_like_keras():
    """Same Dense(2) model, data and loss in both; 5 Adam steps of real backprop."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    kernel, bias = rng.normal(size=(3, 2)).astype("float32"), np.zeros(2, "float32")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([kernel, bias])
    keras_opt = keras.optimizers.Adam(learning_rate=0.1, clipnorm=0.5)
    params = _torch_params(init=[kernel, bias])
    opt = optimizers.get({"class_name": "Adam", "config": keras_opt.get_config()})
    opt.build(params)
    for _ in range(STEPS):
        pred = model(x)
        loss = torch.mean((pred - torch.from_numpy(y)) ** 2)
        variables = model.trainable_variables
        grads = torch.autograd.grad(loss, [v.value for v in variables])
        keras_opt.apply_gradients(zip(grads, variables, strict=True))

        opt.zero_grad()
        ours_pred = torch.from_numpy(x) @ params[0] + params[1]
        torch.mean((ours_pred - torch.from_numpy(y)) ** 2).backward()
        opt.step()
    _assert_weights_equal([p.detach().numpy() for p in params], model.get_weights())


# --------------------------------------------------------------------------- config and lookup


@pytest.mark.parametrize(
    "name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam"]
)
def test_defaults_and_config_match_keras(name):
    ours = getattr(optimizers, name)()
    theirs = getattr(keras.optimizers, name)()
    keras_config = theirs.get_config()
    config = ours.get_config()
    assert set(keras_config) - set(config) == set(optimizers.Optimizer._KERAS_ONLY_DEFAULTS)
    assert ours.name == theirs.name
    # Keras stores the learning rate as float32: 0.001 comes back as 0.0010000000474974513.
    assert keras_config.pop("learning_rate") == pytest.approx(config.pop("learning_rate"))
    assert {k: keras_config[k] for k in config} == config
    rebuilt = type(ours).from_config(keras_config)
    assert {k: v for k, v in rebuilt.get_config().items() if k != "learning_rate"} == config


def test_schedule_in_config_round_trips_through_keras_format():
    keras_lr = keras.optimizers.schedules.CosineDecay(0.1, 10, alpha=0.2)
    keras_config = keras.optimizers.SGD(learning_rate=keras_lr, momentum=0.5).get_config()
    ours = optimizers.get({"class_name": "SGD", "config": keras_config})
    assert isinstance(ours._learning_rate, schedules.CosineDecay)
    assert ours.get_config()["learning_rate"]["config"] == keras_config["learning_rate"]["config"]
    assert ours.learning_rate == pytest.approx(0.1)


@pytest.mark.parametrize(
    "identifier",
    ["adam", "Adam", "ADAM", "sgd", "rmsprop", "RMSprop", "adamw", "adagrad", "adadelta",
     "adamax", "nadam"],
)  # fmt: skip
def test_get_resolves_names_like_keras(identifier):
    assert (
        type(optimizers.get(identifier)).__name__ == type(keras.optimizers.get(identifier)).__name__
    )


def test_get_passes_instances_and_classes():
    opt = optimizers.Nadam()
    assert optimizers.get(opt) is opt
    assert optimizers.get(None) is None
    assert isinstance(optimizers.get(optimizers.Adamax), optimizers.Adamax)


# Steps 0..12 cover warmup, decay, staircase and after-the-end behaviour.
SCHEDULE_CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5}),
    ("ExponentialDecay",
     {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.5, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [2, 5, 9], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 7}),
    ("PolynomialDecay",
     {"initial_learning_rate": 0.1, "decay_steps": 4, "power": 0.5, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.3}),
    ("InverseTimeDecay",
     {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.3, "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 8, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 6, "warmup_target": 0.2,
                     "warmup_steps": 4}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kwargs"), SCHEDULE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(SCHEDULE_CASES)]
)
def test_schedules_match_keras(name, kwargs):
    ours, theirs = _schedule_pair(name, **kwargs)
    for step in range(13):
        assert ours(step) == pytest.approx(float(theirs(step)), rel=1e-6, abs=1e-9), step
    assert ours.get_config() == theirs.get_config()
    rebuilt = schedules.deserialize(keras.optimizers.schedules.serialize(theirs))
    assert rebuilt.get_config() == ours.get_config()


# --------------------------------------------------------------------------- errors


def test_unknown_optimizer_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adamm'\. Known names: SGD, Adam"):
        optimizers.get("adamm")


def test_bad_optimizer_identifier():
    with pytest.raises(TypeError, match="Expected an optimizer name.*got int"):
        optimizers.get(1)
    with pytest.raises(ValueError, match="Cannot build an optimizer from"):
        optimizers.get({"class_name": "Sgdd", "config": {}})


@pytest.mark.parametrize("lr", [-0.1, float("nan")])
def test_negative_learning_rate(lr):
    with pytest.raises(ValueError, match=r"Adam: learning_rate must be >= 0, got"):
        optimizers.Adam(learning_rate=lr)
    opt = optimizers.SGD()
    with pytest.raises(ValueError, match="SGD: learning_rate must be >= 0"):
        opt.learning_rate = lr


def test_learning_rate_of_wrong_type():
    with pytest.raises(TypeError, match="learning_rate must be a float, a schedule"):
        optimizers.SGD(learning_rate="0.1")


def test_cannot_set_a_number_on_a_scheduled_optimizer():
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9))
    with pytest.raises(TypeError, match="follows a learning-rate schedule"):
        opt.learning_rate = 0.01


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: optimizers.SGD(momentum=1.5), r"SGD: momentum must be a number >= 0 and <= 1"),
        (lambda: optimizers.Adam(beta_1=1.0), r"Adam: beta_1 must be a number >= 0 and < 1"),
        (lambda: optimizers.RMSprop(epsilon=-1.0), "RMSprop: epsilon must be a number >= 0"),
        (lambda: optimizers.Adagrad(initial_accumulator_value=-0.1), "initial_accumulator"),
        (lambda: optimizers.SGD(clipnorm=-1.0), "clipnorm must be a number >= 0"),
        (lambda: optimizers.Adam(weight_decay=-0.1), "weight_decay must be a number >= 0"),
        (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), "at most one of clipnorm"),
        (lambda: optimizers.AdamW(weight_decay=None), "AdamW: weight_decay must be a float"),
        (lambda: optimizers.SGD(foo=1), "unexpected keyword argument 'foo'"),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_keras_only_features_are_refused_in_configs():
    config = keras.optimizers.Adam(use_ema=True).get_config()
    with pytest.raises(ValueError, match="use_ema is not supported by rnnkit"):
        optimizers.Adam.from_config(config)


def test_step_before_build_and_without_gradients():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"not built\. Call opt.build\(model.parameters\(\)\)"):
        opt.step()
    opt.build(_torch_params())
    with pytest.raises(ValueError, match=r"no parameter has a gradient\. Call loss.backward"):
        opt.step()


def test_build_errors():
    with pytest.raises(ValueError, match="got no parameters"):
        optimizers.SGD().build([])
    with pytest.raises(TypeError, match="parameter 0 must be a leaf torch tensor"):
        optimizers.SGD().build([np.zeros(3)])
    opt = optimizers.SGD()
    opt.build(_torch_params())
    opt.build(opt.params)  # same parameters again: fine
    with pytest.raises(ValueError, match="already built for other parameters"):
        opt.build(_torch_params())
    with pytest.raises(ValueError, match="was not built for"):
        opt.apply_gradients([(torch.zeros(4), torch.nn.Parameter(torch.zeros(4)))])


def test_state_dict_errors():
    with pytest.raises(ValueError, match="no state before build"):
        optimizers.Adam().state_dict()
    adam = optimizers.Adam()
    adam.build(_torch_params())
    with pytest.raises(ValueError, match="saved by Adam. Create a Adam to load it"):
        optimizers.SGD().load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="expected a dict from opt.state_dict"):
        adam.load_state_dict({"step": 1})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), "decay_steps must be > 0, got 0"),
        (lambda: schedules.CosineDecay(0.1, -5), "CosineDecay: decay_steps must be > 0"),
        (lambda: schedules.PiecewiseConstantDecay([1, 2], [1.0]), "one more entry than"),
        (lambda: schedules.PiecewiseConstantDecay([3, 2], [1, 2, 3]), "boundaries must increase"),
        (lambda: schedules.deserialize({"class_name": "StepDecay"}), "Cannot build a learning"),
    ],
)
def test_bad_schedules(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_and_the_op_by_op_update_agree(amsgrad, monkeypatch):
    """The fused kernel (Keras' formula through its learning rate and eps) and the op-by-op
    update give the same weights, on contiguous and transposed (LSTM-style) parameters."""
    from rnnkit.optimizers import _fused_adam_fits

    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(4, 6, generator=gen), torch.randn(6, 4, generator=gen).t()]
    grads = [[torch.randn(4, 6, generator=gen) for _ in start] for _ in range(6)]

    def run(fused):
        monkeypatch.setattr(
            optimizers, "_fused_adam_fits", _fused_adam_fits if fused else lambda *a: False
        )
        params = [torch.nn.Parameter(p.clone(memory_format=torch.preserve_format)) for p in start]
        opt = optimizers.Adam(learning_rate=0.05, amsgrad=amsgrad)
        opt.build(params)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = torch.empty_like(p).copy_(g)  # laid out like the parameter
            if fused:  # every tensor laid out like its parameter: the kernel runs
                assert _fused_adam_fits(params, [p.grad for p in params])
            opt.step()
        return params

    fused, by_op = run(True), run(False)
    assert fused[1].t().is_contiguous()  # the transposed layout survives the kernel
    for a, b in zip(fused, by_op, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_fused_adam_is_refused_where_a_gradient_is_laid_out_unlike_its_parameter():
    """The kernel reads tensors as flat memory: a transposed weight with a contiguous gradient
    (or state loaded from a file) must take the op-by-op update, which handles any layout."""
    from rnnkit.optimizers import _fused_adam_fits

    weight = torch.nn.Parameter(torch.randn(6, 4).t())
    assert _fused_adam_fits([weight], [torch.empty_like(weight)])
    assert not _fused_adam_fits([weight], [torch.zeros(4, 6)])
    reference = torch.nn.Parameter(weight.detach().contiguous())
    for p in (weight, reference):
        opt = optimizers.Adam(learning_rate=0.05)
        opt.build([p])
        p.grad = torch.ones(4, 6)  # contiguous, whatever the parameter's layout
        opt.step()
    torch.testing.assert_close(weight, reference, rtol=0, atol=1e-7)
