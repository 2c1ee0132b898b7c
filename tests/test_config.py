"""Configuration: type and key checks, presets, the image geometry's single home, per-kind model
sections, the loss settings, and configs of earlier layouts (renamed keys, stored configs)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import yaml
from helpers import child_env, tiny

import hvrnn
from hvrnn.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    config_from_dict,
    save_config,
)
from hvrnn.model import HVRNNConfig, SVGLPConfig

# ---------------------------------------------------------------------------------------------
# Keys and types
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override,key", [
    ("model.bogus=1", "model.bogus"),
    ("model.latent_resolutions=[1,3]", "model.latent_resolutions"),
    ("model.latent_resolutions=[8,1]", "model.latent_resolutions"),
    ("data.n_ctx=0", "data.n_ctx"),
    ("data.image_size=48", "data.image_size"),
    ("model.n_z=ten", "model.n_z"),
    ("loss.likelihood=poisson", "loss.likelihood"),
    ("model.gn_groups_lstm=3", "model.gn_groups_lstm"),
    ("model.g_dim=16", "model.g_dim"),  # a setting of another kind
    ("loss.rollout_inputs=1.5", "loss.rollout_inputs"),
    ("loss.rollout_warmup_steps=-1", "loss.rollout_warmup_steps"),
])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny("tiny", override)


def test_config_is_frozen_and_round_trips(tmp_path):
    cfg = tiny("tiny", "model.n_z=3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.n_z = 5
    save_config(cfg, tmp_path / "c.yaml")
    again = hvrnn.load_config(tmp_path / "c.yaml")
    assert dataclasses.replace(again, name=cfg.name) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="model.n_ctx"):
        hvrnn.load_config("tiny", ["model.n_ctx=3"])  # disagrees with data.n_ctx=2


def test_unknown_model_kind_is_refused():
    with pytest.raises(ConfigError, match=r"model\.kind='svg'"):
        tiny("tiny", "model.kind=svg")
    with pytest.raises(ConfigError, match=r"model\.kind='svg'"):
        hvrnn.build_model(ModelConfig(kind="svg"))


def test_config_classes_moved_to_their_kinds_still_import_from_hvrnn_config():
    """The built-in kinds' config classes live in their kind's module; the old names of
    ``hvrnn.config`` resolve to the same classes, with a DeprecationWarning naming the new
    place."""
    import hvrnn.config
    import hvrnn.model

    for name, module in (("HVRNNConfig", "hvrnn"), ("SVGLPConfig", "svg"),
                         ("PredNetConfig", "prednet"), ("SAVPConfig", "savp")):
        with pytest.warns(DeprecationWarning, match=rf"use hvrnn\.model\.{module}\.{name}"):
            cls = getattr(hvrnn.config, name)
        assert cls is getattr(hvrnn.model, name)
        assert cls.__module__ == f"hvrnn.model.{module}"
    with pytest.warns(DeprecationWarning, match="hvrnn.config.HVRNNConfig is deprecated"):
        from hvrnn.config import HVRNNConfig as Old
    assert Old is HVRNNConfig
    with pytest.raises(AttributeError, match="NoSuchConfig"):
        hvrnn.config.NoSuchConfig  # noqa: B018


def test_the_config_layer_imports_a_built_in_kind_on_its_first_lookup():
    """Loading a preset reads the kind's module (hvrnn.config.BUILTIN_KINDS) only then: the
    config layer imports no model module of its own, and an unknown kind is refused, naming
    every built-in kind, without importing any."""
    import subprocess
    import sys

    code = """
import sys
import hvrnn.config as c
assert not [m for m in sys.modules if m.startswith("hvrnn.model")], "model imported"
try:
    c.model_config_class("svg")
except c.UnknownKindError as exc:
    print(exc.message)
assert not [m for m in sys.modules if m.startswith("hvrnn.model")], "model imported"
cfg = c.load_config("tiny_savp")
print(type(cfg.model).__module__, "hvrnn.model.savp" in sys.modules)
print(type(c.ExperimentConfig().model).__module__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), check=True).stdout.splitlines()
    assert out == ["model.kind='svg' is invalid: expected one of ['hvrnn', 'prednet', 'savp', "
                   "'svg_lp']", "hvrnn.model.savp True", "hvrnn.model.hvrnn"]


def test_derived_preset_keeps_its_own_name():
    cfg = hvrnn.load_config("bair64_nohier")
    assert cfg.name == "bair64_nohier" and cfg.model.latent_resolutions == (1,)
    assert cfg.data.name == "bair"  # inherited from its base preset


def test_a_preset_of_another_kind_does_not_inherit_its_base_model_section():
    cfg = hvrnn.load_config("tiny_svglp")  # base: tiny, an hvrnn preset
    assert isinstance(cfg.model, SVGLPConfig) and cfg.data == hvrnn.load_config("tiny").data
    assert cfg.model.gn_groups == SVGLPConfig.gn_groups


def test_float_overrides_accept_exponent_notation():
    assert tiny("tiny", "train.lr=1e-3").train.lr == 1e-3
    assert tiny("tiny", "model.var_floor=0").model.var_floor == 0.0
    with pytest.raises(ConfigError, match="train.lr"):
        tiny("tiny", "train.lr=fast")


# ---------------------------------------------------------------------------------------------
# One home per value
# ---------------------------------------------------------------------------------------------


def test_image_geometry_lives_in_the_data_section():
    cfg = tiny("tiny", "data.image_size=16", "data.n_ctx=3", "data.channels=3")
    assert (cfg.model.image_size, cfg.model.n_ctx, cfg.model.image_channels) == (16, 3, 3)
    assert "image_size" not in cfg.to_dict()["model"] and "n_ctx" not in cfg.to_dict()["model"]
    # Replacing the data section hands the new geometry to the model section.
    smaller = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=8))
    assert smaller.model.image_size == 8
    model = hvrnn.build_model(cfg.model)
    assert model.n_ctx == 3
    # A model section on its own has no geometry; build_model can take it from a data section.
    with pytest.raises(ConfigError, match="geometry"):
        hvrnn.build_model(HVRNNConfig())
    alone = hvrnn.build_model(dataclasses.replace(cfg.model, geometry=None), cfg.data)
    assert sum(p.numel() for p in alone.parameters()) == sum(
        p.numel() for p in model.parameters())


OLD_LOSS_KEYS = ("model.likelihood=l1", "model.kl_estimator=mc", "train.kl_beta=0.5",
                 "train.beta_warmup_steps=7", "train.free_bits=0.25", "train.rollout_inputs=0.3",
                 "train.rollout_warmup_steps=9", "train.rollout_from=truth")


def test_loss_settings_form_one_section():
    cfg = tiny("tiny", "loss.likelihood=l1", "loss.kl_estimator=mc", "loss.kl_beta=0.5",
               "loss.kl_warmup_steps=7", "loss.free_bits=0.25", "loss.rollout_inputs=0.3",
               "loss.rollout_warmup_steps=9", "loss.rollout_from=truth")
    assert dataclasses.astuple(cfg.loss) == ("l1", "mc", 0.5, 7, 0.25, 0.3, 9, "truth")
    assert "loss" in cfg.to_dict() and not {"likelihood", "kl_estimator"} & set(
        cfg.to_dict()["model"])
    assert not {"kl_beta", "free_bits", "rollout_inputs"} & set(cfg.to_dict()["train"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = tiny("tiny", *OLD_LOSS_KEYS)
    assert old == cfg
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert len(messages) == len(OLD_LOSS_KEYS)
    assert "config key train.beta_warmup_steps is deprecated; use loss.kl_warmup_steps" in \
        messages


def test_old_loss_keys_in_a_file_override_its_base(tmp_path):
    """An old key in a file whose base is of the current layout lands on the base's value."""
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"base": "bair64_svglp", "model": {"likelihood": "l1"},
                                    "train": {"kl_beta": 2.0}}))
    with pytest.warns(FutureWarning, match="deprecated; use loss"):
        cfg = hvrnn.load_config(path)
    assert (cfg.loss.likelihood, cfg.loss.kl_beta) == ("l1", 2.0)
    assert hvrnn.load_config("bair64_svglp").loss.likelihood == "l2"


def test_a_kind_does_not_inherit_its_base_likelihood():
    assert hvrnn.load_config("bair64").loss.likelihood == "l1"
    assert hvrnn.load_config("bair64_savp").loss.likelihood == "bce"  # the default
    assert hvrnn.load_config("smmnist32_svglp").loss.free_bits == 0.5  # the rest is inherited


def test_model_sections_hold_only_their_kind_settings():
    hv, svg = hvrnn.load_config("tiny").model, hvrnn.load_config("tiny_svglp").model
    assert isinstance(hv, HVRNNConfig) and not hasattr(hv, "g_dim")
    assert isinstance(svg, SVGLPConfig) and not hasattr(svg, "prior_dense")
    assert svg.latent_shapes == ((svg.n_z, 1, 1),)


def test_eval_section_defaults_to_the_protocol():
    assert DataConfig().geometry.n_ctx == DataConfig().n_ctx
    cfg = hvrnn.load_config("bair64")
    assert cfg.eval.n_samples == 0 and cfg.eval.max_sequences == 0


# ---------------------------------------------------------------------------------------------
# Earlier layouts
# ---------------------------------------------------------------------------------------------


def _old_layout(cfg) -> dict:
    """The dict an earlier version stored for ``cfg``: geometry copied into the model section,
    train.beta / train.betas, the loss settings in the model and train sections, and the
    settings of every kind in one model section."""
    d = cfg.to_dict()
    d["model"].update(n_ctx=cfg.data.n_ctx, image_size=cfg.data.image_size,
                      image_channels=cfg.data.channels)
    for key, value in dict(g_dim=128, rnn_size=256, predictor_layers=2, posterior_layers=1,
                           prior_layers=1, latent_resolutions=[1], prior_dense=True,
                           center_tap_1x1=True).items():
        d["model"].setdefault(key, value)
    loss = d.pop("loss")
    d["model"].update(likelihood=loss.pop("likelihood"), kl_estimator=loss.pop("kl_estimator"))
    d["train"].update(beta=loss.pop("kl_beta"), beta_warmup_steps=loss.pop("kl_warmup_steps"),
                      **loss)
    d["train"]["betas"] = d["train"].pop("adam_betas")
    return d


@pytest.mark.parametrize("preset", ["tiny", "tiny_svglp", "bair64_svglp"])
def test_configs_of_the_earlier_layout_load_unchanged(preset):
    cfg = hvrnn.load_config(preset)
    old = _old_layout(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stored configs migrate silently
        assert config_from_dict(old, warn=False) == cfg
    from hvrnn.checkpoint import config_differences

    assert config_differences(old, cfg.to_dict()) == []


def test_renamed_keys_still_work_with_a_deprecation_message(tmp_path):
    with pytest.warns(FutureWarning, match="train.beta is deprecated; use loss.kl_beta"):
        cfg = tiny("tiny", "train.beta=0.25")
    assert cfg.loss.kl_beta == 0.25
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"base": "tiny", "train": {"betas": [0.5, 0.9]}}))
    with pytest.warns(FutureWarning, match="train.adam_betas"):
        assert hvrnn.load_config(path).train.adam_betas == (0.5, 0.9)
    with pytest.raises(ConfigError, match="train.kl_beta and train.beta are the same setting; "
                                          "give only loss.kl_beta"), \
            pytest.warns(FutureWarning):
        config_from_dict({"train": {"beta": 1.0, "kl_beta": 2.0}})
    with pytest.raises(ConfigError, match="give only loss.free_bits"), \
            pytest.warns(FutureWarning):
        config_from_dict({"train": {"free_bits": 1.0}, "loss": {"free_bits": 2.0}})


def test_a_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    """A run directory called like its preset (runs are often named so) must not be read as
    the config file when the preset is named from its parent folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    assert hvrnn.load_config("tiny").name == "tiny"
    (tmp_path / "nopreset").mkdir()
    with pytest.raises(ConfigError, match="nopreset"):
        hvrnn.load_config("nopreset")
