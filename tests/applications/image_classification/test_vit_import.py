"""`tfformer import image_classification` of a Hugging Face and a timm ViT directory: the
model equals the reference implementation, the export answers image bytes through TF
Serving's session path in a fresh process with the reference pipeline's logits and top-5
labels (`tests/fixtures/pretrained/make_vit.py`), and bad directories are named."""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from applications import cli
from applications.image_classification.import_vit import read_checkpoint
from applications.image_classification.preprocessing import decode_image
from tests.support.serving_checks import saved_model_cli_run, serve_every_signature

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "pretrained"
IMAGES = [FIXTURES / "images" / "photo.png", FIXTURES / "images" / "small_gray.png"]
LAYOUTS = ["vit_hf", "vit_timm"]


def _reference(name):
    return np.load(FIXTURES / name / "reference.npz")


@pytest.fixture(scope="module", params=LAYOUTS)
def checkpoint(request):
    config, names, model, _, _ = read_checkpoint(str(FIXTURES / request.param))
    return {"name": request.param, "config": config, "names": names, "model": model}


def test_the_model_equals_the_reference_implementation(checkpoint):
    reference = _reference(checkpoint["name"])
    model = checkpoint["model"]
    np.testing.assert_allclose(model(reference["random_pixels"]).numpy(),
                               reference["random_logits"], atol=1e-4, rtol=0)
    for index in range(len(IMAGES)):
        pixels = reference[f"pixels_{index}"][None].astype("float32")
        np.testing.assert_allclose(model(pixels).numpy()[0], reference[f"logits_{index}"],
                                   atol=1e-4, rtol=0)


def test_images_are_resized_and_cropped_as_the_reference_pipeline_does(checkpoint):
    """PIL's fixed-point arithmetic is not TensorFlow's: a pixel may differ by 1, rarely."""
    reference = _reference(checkpoint["name"])
    for index, path in enumerate(IMAGES):
        ours = decode_image(tf.io.read_file(str(path)), checkpoint["config"]).numpy()
        difference = np.abs(ours.astype(int) - reference[f"pixels_{index}"].astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.03, (
            difference.max(), (difference > 0).mean())


@pytest.fixture(scope="module", params=LAYOUTS)
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    run, export = str(root / "run"), str(root / "export")
    assert cli.main(["import", "image_classification", "--from",
                     str(FIXTURES / request.param), "--workdir", run]) == 0
    assert cli.main(["export", "image_classification", "--workdir", run,
                     "--export-dir", export]) == 0
    return {"name": request.param, "run": run, "path": os.path.join(export, "1")}


def _label_names(name):
    config = json.loads((FIXTURES / name / "config.json").read_text())
    if "id2label" in config:
        return [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    return config["label_names"]


def test_served_image_bytes_give_the_reference_logits_and_labels(exported):
    reference = _reference(exported["name"])
    encoded = [path.read_bytes() for path in IMAGES]
    photo = tf.io.decode_png(encoded[0], channels=3).numpy()[None]  # (1, 64, 80, 3)
    prepared = np.stack([reference[f"pixels_{i}"] for i in range(len(IMAGES))])
    served, attention, from_pixels, from_prepared = serve_every_signature(exported["path"], [
        ("serving_default", {"image_bytes": encoded}), ("attention", {"image_bytes": encoded}),
        ("pixels", {"pixels": photo}), ("pixels", {"pixels": prepared})])
    names = _label_names(exported["name"])
    for index in range(len(IMAGES)):
        expected = reference[f"logits_{index}"]
        # The reference pipeline's own resized pixels, at the model's size, are taken as they
        # are: the model alone, exact.
        np.testing.assert_allclose(from_prepared["logits"][index], expected, atol=1e-4, rtol=0)
        # From the PNG bytes: our resize's rare 1-off pixels move the logits by up to 1.1e-3
        # (bilinear, Hugging Face) and 6e-4 (bicubic with a crop, timm).
        np.testing.assert_allclose(served["logits"][index], expected, atol=2e-3, rtol=0)
        top = [names[i] for i in np.argsort(-expected)[:5]]
        assert [label.decode() for label in served["top_k_labels"][index]] == top
    np.testing.assert_allclose(attention["logits"], served["logits"], atol=1e-5)
    # Pixels of any size are resized and cropped as the bytes are.
    np.testing.assert_allclose(from_pixels["logits"][0], served["logits"][0], atol=1e-5)


def test_saved_model_cli_runs_the_export(exported, tmp_path):
    images = tmp_path / "images.npy"
    np.save(images, np.array([IMAGES[0].read_bytes()], dtype=object), allow_pickle=True)
    output = saved_model_cli_run(exported["path"], "serving_default",
                                 inputs=f"image_bytes={images}")
    reference = _reference(exported["name"])
    best = _label_names(exported["name"])[int(np.argmax(reference["logits_0"]))]
    assert "Result for output key top_k_labels" in output
    assert repr(best.encode()) in output


def test_classify_command_prints_the_checkpoints_labels(exported, capsys):
    reference = _reference(exported["name"])
    best = _label_names(exported["name"])[int(np.argmax(reference["logits_0"]))]
    assert cli.main(["classify", os.path.dirname(exported["path"]), str(IMAGES[0])]) == 0
    assert capsys.readouterr().out.split(": ", 1)[1].startswith(best + " ")


def _copy(tmp_path, name):
    target = tmp_path / f"copy_{len(list(tmp_path.iterdir()))}"
    shutil.copytree(FIXTURES / name, target)
    return target


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), **changes}))


def _import_error(source, workdir, capsys):
    before = sorted(os.listdir(workdir)) if os.path.exists(workdir) else None
    with pytest.raises(SystemExit) as stop:
        cli.main(["import", "image_classification", "--from", str(source), "--workdir",
                  str(workdir)])
    assert stop.value.code == 2
    after = sorted(os.listdir(workdir)) if os.path.exists(workdir) else None
    assert after == before  # nothing half-written, nothing removed
    assert not os.path.exists(f"{workdir}.importing")
    return capsys.readouterr().err


def test_bad_directories_are_named_and_leave_no_run(tmp_path, capsys):
    run = tmp_path / "run"

    missing = _copy(tmp_path, "vit_hf")
    (missing / "preprocessor_config.json").unlink()
    assert f"{missing} has no preprocessor_config.json" in _import_error(missing, run, capsys)

    other = _copy(tmp_path, "vit_hf")
    _edit_json(other / "config.json", model_type="bert")
    assert "describes a 'bert' model, not a ViT" in _import_error(other, run, capsys)

    wider = _copy(tmp_path, "vit_hf")
    _edit_json(wider / "config.json", hidden_size=64)
    assert ("model.safetensors's vit.embeddings.cls_token has shape (1, 1, 32), which does not "
            "fit (1, 1, 64)") in _import_error(wider, run, capsys)

    odd = _copy(tmp_path, "vit_hf")
    _edit_json(odd / "config.json", image_size=50)
    assert "has image size 50, which patch size 8 does not divide" in _import_error(
        odd, run, capsys)

    approximate = _copy(tmp_path, "vit_hf")
    _edit_json(approximate / "config.json", hidden_act="gelu_new")
    assert "hidden_act 'gelu_new' is not supported" in _import_error(approximate, run, capsys)

    registers = _copy(tmp_path, "vit_timm")
    config = json.loads((registers / "config.json").read_text())
    config["model_args"]["reg_tokens"] = 4
    (registers / "config.json").write_text(json.dumps(config))
    assert "has reg_tokens=4; only ViTs with no registers are supported" in _import_error(
        registers, run, capsys)

    no_weights = _copy(tmp_path, "vit_timm")
    (no_weights / "pytorch_model.bin").unlink()
    assert "holds no weights" in _import_error(no_weights, run, capsys)

    (run / "old").mkdir(parents=True)
    assert f"{run} is not empty" in _import_error(FIXTURES / "vit_timm", run, capsys)


def test_weights_of_another_variant_are_refused_by_name(tmp_path, capsys):
    """A timm ViT with layer scale (init_values) has tensors ours does not: refused, not
    silently dropped."""
    from safetensors.numpy import save_file

    from tfformer.pretrained import read_state_dict

    variant = _copy(tmp_path, "vit_timm")
    state_dict, _ = read_state_dict(str(variant))
    state_dict["blocks.0.ls1.gamma"] = np.ones(48, np.float32)
    (variant / "pytorch_model.bin").unlink()
    save_file(state_dict, str(variant / "model.safetensors"))
    error = _import_error(variant, tmp_path / "run", capsys)
    assert "holds 1 tensors this architecture does not have, e.g. ['blocks.0.ls1.gamma']" in error


def _image_folder(directory, classes, per_class=8, size=(36, 44)):
    """One folder per class; class i's images are mostly color i, with noise."""
    palette = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230], [230, 220, 40],
                        [200, 60, 210]])
    rng = np.random.default_rng(5)
    for index, name in enumerate(classes):
        (directory / name).mkdir(parents=True)
        for number in range(per_class):
            image = palette[index] + rng.normal(0, 30, (*size, 3))
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            (directory / name / f"{number}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return str(directory)


def _epoch_losses(out):
    return [float(line.split(" loss: ")[1].split()[0]) for line in out.splitlines()
            if " loss: " in line and "val_loss" in line]


def test_fine_tuning_from_a_checkpoint_directory_on_other_classes_at_another_size(
        tmp_path, capsys):
    """`train --init-from DIR` imports the timm directory for the run, replaces the head for
    the data's three classes, resizes the position table for 60x60 (a 6x6 grid instead of
    4x4), trains LoRA factors and the head, and exports int8 weights that TF Serving's
    loader serves with the new labels."""
    data_dir = _image_folder(tmp_path / "data", ["red", "green", "blue"])
    run, export = tmp_path / "run", tmp_path / "export"
    assert cli.main(["train", "image_classification", "--init-from",
                     str(FIXTURES / "vit_timm"), "--data", data_dir, "--workdir", str(run),
                     "--export-dir", str(export), "--set", "epochs=3", "--set", "batch_size=8",
                     "--set", "image_size=60", "--set", "learning_rate=3e-3",
                     "--set", "lora_rank=2", "--set", "quantize=int8"]) == 0
    out = capsys.readouterr().out
    assert "(for this run only; `tfformer import` keeps an imported run)" in out
    assert "new head: 3 classes (blue, green, red) instead of the checkpoint's 4" in out
    assert "position table resized from 4x4 to 6x6 patches (40 -> 60 pixels)" in out
    losses = _epoch_losses(out)
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    info = json.loads((run / "run_info.json").read_text())
    assert info["pretrained"] == str(FIXTURES / "vit_timm")
    assert info["class_names"] == ["blue", "green", "red"]
    image = (tmp_path / "data" / "red" / "0.png").read_bytes()
    (served,) = serve_every_signature(str(export / "1"), [
        ("serving_default", {"image_bytes": [image]}), ("attention", {"image_bytes": [image]}),
        ("pixels", {"pixels": np.zeros((1, 60, 60, 3), np.uint8)})])[:1]
    assert sorted(label.decode() for label in served["top_k_labels"][0]) == [
        "blue", "green", "red"]


def test_fine_tuning_with_the_checkpoints_classes_keeps_its_head_and_preprocessing(
        tmp_path, capsys):
    """With the checkpoint's own labels as class folders (sorted, so in another order) and
    a learning rate of ~0, the fine-tuned export gives the reference pipeline's logits:
    weights, head (reordered), preprocessing and normalisation all carried over."""
    names = _label_names("vit_hf")
    imported = str(tmp_path / "imported")
    assert cli.main(["import", "image_classification", "--from", str(FIXTURES / "vit_hf"),
                     "--workdir", imported]) == 0
    data_dir = _image_folder(tmp_path / "data", names, per_class=2)
    export = tmp_path / "export"
    assert cli.main(["train", "image_classification", "--init-from", imported, "--data",
                     data_dir, "--workdir", str(tmp_path / "run"), "--export-dir", str(export),
                     "--set", "epochs=1", "--set", "batch_size=4",
                     "--set", "learning_rate=1e-12"]) == 0
    assert "the head's classes reordered to the data's" in capsys.readouterr().out
    reference = _reference("vit_hf")
    (served,) = serve_every_signature(str(export / "1"), [
        ("serving_default", {"image_bytes": [IMAGES[0].read_bytes()]}),
        ("attention", {"image_bytes": [IMAGES[0].read_bytes()]}),
        ("pixels", {"pixels": np.zeros((1, 48, 48, 3), np.uint8)})])[:1]
    order = sorted(range(len(names)), key=lambda i: names[i])  # the data's class order
    np.testing.assert_allclose(served["logits"][0], reference["logits_0"][order], atol=2e-3)
    # The architecture is the checkpoint's; changing it is refused, named.
    with pytest.raises(SystemExit):
        cli.main(["train", "image_classification", "--init-from", imported, "--data",
                  data_dir, "--workdir", str(tmp_path / "other"), "--set", "d_model=64"])
    assert "d_model (is 32) can't change" in capsys.readouterr().err


def test_a_backbone_without_a_head_imports_with_a_zero_head(tmp_path, capsys):
    """A ViTModel checkpoint (no "vit." prefix, a pooler, no classifier), as
    google/vit-base-patch16-224-in21k ships: the backbone's weights load, the head is zero
    and the summary says to fine-tune it."""
    from safetensors.numpy import save_file

    from tfformer.pretrained import read_state_dict

    backbone = _copy(tmp_path, "vit_hf")
    state_dict, _ = read_state_dict(str(backbone))
    renamed = {name[len("vit."):]: value for name, value in state_dict.items()
               if name.startswith("vit.")}
    renamed["pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    renamed["pooler.dense.bias"] = np.zeros(32, np.float32)
    save_file(renamed, str(backbone / "model.safetensors"))
    config = json.loads((backbone / "config.json").read_text())
    for key in ("id2label", "label2id"):
        config.pop(key)
    (backbone / "config.json").write_text(json.dumps({**config, "architectures": ["ViTModel"]}))
    _, names, model, _, has_head = read_checkpoint(str(backbone))
    _, _, full, _, _ = read_checkpoint(str(FIXTURES / "vit_hf"))
    assert not has_head and not np.any(model.head.kernel.numpy())
    assert names == ["LABEL_0", "LABEL_1"]  # transformers' default labels
    for ours, reference in zip(model.encoder.weights, full.encoder.weights):
        np.testing.assert_array_equal(ours.numpy(), reference.numpy())
    assert cli.main(["import", "image_classification", "--from", str(backbone), "--workdir",
                     str(tmp_path / "run")]) == 0
    assert "with an untrained head (the checkpoint is a backbone" in capsys.readouterr().out


def test_evaluate_loads_images_as_the_export_does_and_matches_classes_by_name(
        exported, tmp_path, capsys):
    """`tfformer evaluate` with the default preset (32x32, stretched) on an imported export
    (48x48 bilinear, or 40x40 bicubic with a crop): the images are loaded as the export
    preprocesses them and the class folders matched to its labels by name (Hugging Face's
    do not sort in class order), so its scores are those of the served bytes: the photo in
    its predicted class, the other image in a wrong one, 50% top-1."""
    names = _label_names(exported["name"])
    reference = _reference(exported["name"])
    best = [int(np.argmax(reference[f"logits_{i}"])) for i in range(len(IMAGES))]
    for name in names:
        for split in ("train", "val"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
        shutil.copy(IMAGES[0], tmp_path / "data" / "train" / name / "photo.png")
    shutil.copy(IMAGES[0], tmp_path / "data" / "val" / names[best[0]] / "photo.png")
    wrong = names[(best[1] + 1) % len(names)]
    shutil.copy(IMAGES[1], tmp_path / "data" / "val" / wrong / "gray.png")
    assert cli.main(["evaluate", "image_classification", "--model",
                     os.path.dirname(exported["path"]), "--data", str(tmp_path / "data"),
                     "--split", "val"]) == 0
    assert "top-1 50.00%" in capsys.readouterr().out
    (tmp_path / "data" / "train" / "zebra").mkdir()
    shutil.copy(IMAGES[0], tmp_path / "data" / "train" / "zebra" / "photo.png")
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "image_classification", "--model",
                  os.path.dirname(exported["path"]), "--data", str(tmp_path / "data"),
                  "--split", "val"])
    assert "the data's classes ['zebra'] are not among the export's" in capsys.readouterr().err
