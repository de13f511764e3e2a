"""Built-in studies: the survey's experiments (its README table and the paper's Tables I-III), an
audit of what the survey's code actually trained, and the other seeds' loss comparisons.

Each entry is a plain spec dict (see ``losslab.study.spec``); ``losslab study show NAME`` prints it
as YAML to copy and edit.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN_STUDIES", "NOISE_LEVELS", "NOISE_LOSSES", "QUICK_ITERATIONS"]

# ---- The budget of `quick` (the `make study` main job): nine configurations, each tuned over three
# learning rates (one tuning seed, on a second synthetic draw) and then trained at its own choice over
# 3 seeds, on yolact_lite (ImageNet EfficientNet-Lite0 from the wheel), two runs at a time (one thread
# each), FPS measured once per architecture after training. Measured numbers: README, "Measured results".
#: The model of `quick`, `audit` and `noise`.
QUICK_MODEL = "yolact_lite"
#: Training iterations of each `quick` run.
QUICK_ITERATIONS = 360
#: Batch size of each `quick` run.
QUICK_BATCH_SIZE = 8
#: Input size (pixels) of the model and of the synthetic images in `quick`.
QUICK_INPUT_SIZE = 128
#: Synthetic training / validation images of `quick`. 200 validation images, not 40: one trained model
#: (BCE, seed 0) scored on disjoint sets of 40 of 480 synthetic validation images gave mask AP with a
#: standard deviation of 5.9 points (Dice's model: 3.2), and the BCE - Dice difference on the same sets
#: 3.2 points; on sets of 120 images 2.0, 1.8 and 0.7. At 40 images the validation set alone was as
#: noisy as the seeds. Evaluating 200 images costs about 10 s more per run (4 %).
QUICK_TRAIN_IMAGES = 200
QUICK_VAL_IMAGES = 200
#: Verdict seeds of `quick`: the verdicts pool the config x seed layout (``study.verdicts``, Holm-corrected).
QUICK_SEEDS = 3
#: How `quick` fine-tunes: AdamW, photometric + flip augmentation only, three anchor scales per
#: level (YOLACT++) and IoU 0.4 / 0.3 matching, for more positive anchors at 128 px. The ImageNet
#: backbone stays frozen (freeze_at=5, batch norms included): measured here with two runs at a time,
#: 400 iterations took 358 s with freeze_at=2 (mask AP 38.9), 244 s with 4 (35.3) and 142 s with 5
#: (35.0), one seed each; batch 4 and 16 trained fewer images per second than batch 8.
#: The lr drops at 60 % and 80 %, so that the plateau window (the last 20 %, ``flags.plateau``) lies
#: in the last lr phase, and every step's loss is logged, so that the plateau test sees 72 points
#: rather than 7: with steps at 70 / 90 % and a row every 10 iterations all three BCE runs read
#: "converged", while every step showed seed 1 still falling (-454 %/1k it [-837, -70]).
#: Eight fixed augmented copies per training image (``augment_variants``) and the frozen backbone's
#: features looked up rather than computed (``cache_features``; exact, ``losslab.models.feature_cache``):
#: the backbone's forward was a third of a step. Each worker process computes a copy's features once
#: for all the runs it executes. Two runs at a time on a 2-core EPYC (bf16), BCE at lr 1e-3, seeds 0
#: and 1: 84 s for the pair with a fresh draw per read (mask AP 35.1, 36.3), 67 s with 4 copies and the
#: cache (37.0, 35.4), about 50 s once a worker's cache holds the copies. Why 8 and not 4: with 4 copies
#: BCE at lr 3e-3, seed 0, was still falling over its last 20 % (-390 %/1k it [-764, -16], fall 28 %;
#: AP 36.6); a fresh draw per read (-224 [-564, +116], AP 38.0) and 8 copies (-122 [-503, +259],
#: AP 37.6) had converged (one seed each, same CPU).
QUICK_RECIPE = {
    "optimizer": "adamw",
    "weight_decay": 1e-4,
    "warmup_iters": 20,
    "lr_steps": [0.6, 0.8],
    "augment": "light",
    "augment_variants": 8,
    "log_every": 1,
}
QUICK_YOLACT = {"scales_per_level": 3, "pos_iou": 0.4, "neg_iou": 0.3, "freeze_at": 5, "cache_features": True}
#: The verdicts' equivalence margin (mask AP points): smaller differences are not worth a loss change.
QUICK_MARGIN = 2.0
#: The learning rates every configuration of `quick`, `audit` and `noise` tries (AdamW), in half-decade
#: steps: one seed each at the recipe above (seed 0, 360 iterations) gave BCE 30.1 at 1e-3 and 31.8 at
#: 4e-3 (33.8 at 2e-3 on another CPU), and Dice 21.3 at 5e-4 (19.2 at 2e-4) but 0.02 at 1e-3 (masks
#: filling their boxes) and 0.00 at 2e-3: the losses' best rates lie a decade apart, so the grid spans
#: a decade, 3e-4 to 3e-3, with the value between them. One tuning seed per value; the choice is made
#: on a second synthetic draw (seed + 1) that the verdict runs never see.
#: The choice is the smallest rate within the equivalence margin of the best tuning score (``tolerance``),
#: not the best score itself: one tuning run per value cannot tell 38.0 from 38.6, and the larger rate is
#: the riskier one. Measured on a 2-core EPYC (bf16) with the best score taken: seven of nine
#: configurations chose 3e-3 (by 0.3-0.6 points over 1e-3 for BCE, MSE, Huber and the hybrids), and
#: at 3e-3 the verdict runs of BCE (seed 2: mask AP 1.0) and MSE (seed 2: 0.0) failed with empty masks,
#: their prototypes inflated (maxima 15-22 against 6-8 in a BCE run that trained), the mechanism that
#: fails Dice at 1e-3: a property of the rate on YOLACT's prototypes, not of the loss.
QUICK_TUNE = {"grid": {"lr": [3e-4, 1e-3, 3e-3]}, "seeds": 1, "tolerance": QUICK_MARGIN}
#: A `quick` run skips its own FPS measurement (one image, and not reported): the report times
#: each distinct architecture once, after training, in a quiet process.
QUICK_FPS_IMAGES = 1

#: The survey's training, as its code ran it (selamikarakas/YolactLossSurvey: `train.py` and
#: `yolact_plus_cig_butts_config` in `data/config.py`), for a GPU and the real Cigarette Butts download
#: (2,000 train / 200 val images; `dataset: {path: ...}`), with the paper's Section IV:
#: - YOLACT++ with ResNet-101 + DCN at 512 px, fine-tuned from ImageNet weights (its `init_weights`
#:   loads `resnet101_reducedfc.pth`, torchvision's ResNet-101 without the classifier): here
#:   torchvision's IMAGENET1K_V1 weights, which must be in torch's hub cache when there is no
#:   internet (the run refuses with the file name and where it goes).
#: - SGD, momentum 0.9, weight decay 5e-4, lr 1e-4 (the paper's; the config's is 1e-3, so it came from
#:   `--lr 1e-4`, which train.py's autoscale does not touch: only `cfg.lr` is scaled, and an `--lr`
#:   replaces it). The warm-up runs from lr_warmup_init = 1e-4 to the lr (flat at 1e-4), and the
#:   config's lr steps (280k, 600k, 700k, 750k iterations) lie beyond every run: the rate is constant.
#: - SSD augmentation (photometric, expand, random crop, mirror): losslab's `augment: ssd`.
#: - Float32 training (`amp: false`): train.py has no mixed precision.
#: - Evaluation keeps detections scoring at least 0.15 (its eval.py `--score_threshold` default, which
#:   its `prep_metrics` applies): `eval_score_threshold: 0.15`.
SURVEY_CONFIG = {
    "input_size": 512,
    "pretrained_backbone": True,
    "optimizer": "sgd",
    "lr": 1e-4,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "warmup_iters": 0,
    "lr_steps": [],
    "augment": "ssd",
    "eval_score_threshold": 0.15,
    "amp": False,  # dbolya's train.py trains in float32
}
#: Its config's iterations at batch 8 (`yolact_plus_cig_butts_config.max_iter`).
SURVEY_MAX_ITER = 4000
#: GPUs the survey trained on (Section IV: 2 x NVIDIA RTX A6000); train.py freezes batch norm when a
#: GPU's share of the batch is below 6.
SURVEY_GPUS = 2
PAPER_DATASET = {"synthetic": {"train": 2000, "val": 200, "size": 512, "seed": 0}}
#: What a `paper-*` study cannot read from the survey's code, said in its report and its --dry-run.
SURVEY_NOTES = [
    "lr 1e-4 at every batch size: the paper's stated rate. Its config's rate is 1e-3, so the runs passed "
    "`--lr 1e-4`, which train.py's autoscale leaves alone (it scales cfg.lr, which an --lr replaces). "
    "Had the config's rate been used, autoscale would have given 2.5e-4 / 1e-3 / 2e-3 at batch 2 / 8 / 16: "
    "set `lr` per variant in a copy of this study (`losslab study show NAME`) to run that reading.",
    "train.py's data loader does not shuffle (shuffle=False, every epoch in file order); losslab's does.",
]


def survey_batch(batch_size: int, gpus: int = SURVEY_GPUS) -> dict[str, Any]:
    """train.py's rules for a batch size: autoscale divides ``max_iter`` by ``batch_size / 8``
    (``cfg.max_iter //= factor``: 2 -> 16,000, 8 -> 4,000, 16 -> 2,000 iterations), and batch norm is
    frozen when ``batch_size // gpus < 6``."""
    factor = batch_size / 8
    return {"batch_size": batch_size, "max_iter": int(SURVEY_MAX_ITER // factor), "freeze_bn": batch_size // gpus < 6}


#: The survey README's nine configurations (its results table, in its order).
README_LOSSES = {
    "BCE": "bce",
    "Dice Loss": "dice",
    "Huber Loss": "huber",
    "Log Cosh Dice": "log_cosh_dice",
    "MSE Loss": "mse",
    "Log Cosh BCE": "log_cosh_bce",
    "Huber Loss + BCE": "huber + bce",
    "Huber Loss + MSE": "huber + mse",
    "BCE + MSE": "bce + mse",
}

# Table III of the paper: (name, alpha, beta) for "alpha * Loss1 + beta * Loss2", in its row order.
_HYBRID_ROWS = [
    ("HL + BCE", 1, 1),
    ("HL + MSE", 1, 1),
    ("MSE + BCE", 1, 1),
    ("MSE + BCE", 2, 1),
    ("MSE + BCE", 3, 1),
    ("MSE + HL", 2, 1),
    ("MSE + HL", 3, 1),
    ("HL + BCE", 2, 1),
    ("HL + BCE", 3, 1),
    ("MSE + BCE", 0.5, 1),
    ("MSE + HL", 0.5, 1),
    ("HL + BCE", 0.5, 1),
]
_SPEC_NAMES = {"HL": "huber", "BCE": "bce", "MSE": "mse"}


def _hybrid_losses() -> dict[str, str]:
    out = {"BCE": "bce"}
    for name, alpha, beta in _HYBRID_ROWS:
        first, second = (_SPEC_NAMES[p.strip()] for p in name.split("+"))
        a = "" if alpha == 1 else f"{alpha}*"
        b = "" if beta == 1 else f"{beta}*"
        out[f"{name} (α={alpha}, β={beta})"] = f"{a}{first} + {b}{second}"
    return out


#: The audit's single losses: as the survey's code ran them, and as it meant them.
AUDIT_SINGLE = {
    "BCE": "bce",
    "MSE (as run: BCE)": "bce",
    "MSE (meant)": "mse",
    "Huber δ=1/2/3 (as run: 0.5·MSE)": "0.5*mse",
    "Dice (as run: pixel_dice)": "pixel_dice(smooth=0.1)",
    "Dice (meant)": "dice",
    "LCDL (as run: log_cosh(pixel_dice))": "log_cosh(pixel_dice(smooth=0.1))",
    "LCDL (meant: log_cosh_dice)": "log_cosh_dice",
    "LCBCE": "log_cosh_bce",
}
#: What each survey loss name is on probabilities: (weight, loss). Huber with delta >= 1 is 0.5*mse.
_ON_PROBABILITIES = {"HL": (0.5, "mse"), "MSE": (1.0, "mse"), "BCE": (1.0, "bce")}
#: In the survey's configs, which loss of each Table III pair ran in the crop (the config's main
#: loss) and which on the uncropped mask (``double_loss_type``, weighted by α): HL + BCE is
#: yolact_plus_huber_bce_loss (main BCE, double Huber), MSE + BCE yolact_plus_mse_bce_loss (main
#: BCE, double MSE), MSE + HL and HL + MSE yolact_plus_mse_huber_loss (main Huber, double MSE).
_AS_RUN = {"HL + BCE": ("BCE", "HL"), "MSE + BCE": ("BCE", "MSE"), "MSE + HL": ("HL", "MSE"), "HL + MSE": ("HL", "MSE")}


def _weighted(weight: float, body: str) -> str:
    return body if weight == 1 else f"{weight:g}*{body}"


def _audit_hybrids() -> dict[str, str]:
    """Table III's rows as run (``uncropped``) and in the crop, with Huber written as 0.5*mse."""
    out = {}
    for name, alpha, beta in _HYBRID_ROWS:
        first, second = (p.strip() for p in name.split("+"))
        main, double = _AS_RUN[name]
        w_main, main_loss = _ON_PROBABILITIES[main]
        w_double, double_loss = _ON_PROBABILITIES[double]
        as_run = f"{_weighted(w_main, main_loss)} + {_weighted(alpha * w_double, f'uncropped({double_loss})')}"
        terms: dict[str, float] = {}
        for loss_name, weight in ((first, alpha), (second, beta)):
            w, loss = _ON_PROBABILITIES[loss_name]
            terms[loss] = terms.get(loss, 0.0) + weight * w
        in_crop = " + ".join(_weighted(w, loss) for loss, w in sorted(terms.items(), key=lambda t: t[0] != "mse"))
        out[f"{name} α={alpha:g} (as run)"] = as_run
        out[f"{name} α={alpha:g} (in crop)"] = in_crop
    return out


#: Wall seconds of `audit` (162 runs, --workers 2) on a 2-core AMD EPYC (Zen 4, bf16), 2026-12-07, with
#: other work (tests) sharing the CPU for part of the time.
AUDIT_WALL_SECONDS = 80 * 60 + 14


def _wall_time_audit() -> str:
    return (
        f"Wall time: {AUDIT_WALL_SECONDS // 3600} h {AUDIT_WALL_SECONDS % 3600 // 60:02d} min for its "
        f"{AUDIT_RUNS} runs (27 distinct configurations, tuning included) with --workers 2 on a 2-core AMD EPYC "
        "(Zen 4)."
    )


def _cpu_dataset() -> dict[str, Any]:
    # The trainer generates the synthetic set once (instance or dense, as the model's task needs).
    return {"synthetic": {"train": QUICK_TRAIN_IMAGES, "val": QUICK_VAL_IMAGES, "size": QUICK_INPUT_SIZE, "seed": 0}}


#: The CPU recipe of the random-init studies (maskrcnn_tiny, MaskNet, depth): AdamW from scratch.
_CPU_CONFIG = {
    "max_iter": 450,
    "batch_size": 4,
    "input_size": QUICK_INPUT_SIZE,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "warmup_iters": 20,
    "lr_steps": [0.8],
    "augment": "light",
}
#: The recipe of `quick`, `audit` and `noise` (yolact_lite).
_LITE_CONFIG = {
    "max_iter": QUICK_ITERATIONS,
    "batch_size": QUICK_BATCH_SIZE,
    "input_size": QUICK_INPUT_SIZE,
    **QUICK_RECIPE,
    **QUICK_YOLACT,
    "fps_images": QUICK_FPS_IMAGES,
}

#: The mask losses of `noise`: pixel, smoothed-target, region, hybrid, surrogate-IoU and hard-pixel losses.
NOISE_LOSSES = {
    "BCE": "bce",
    "Label smoothing BCE": "label_smoothing_bce(smoothing=0.1)",
    "Dice": "dice",
    "BCE + Dice": "bce + dice",
    "Lovász hinge": "lovasz_hinge",
    "Focal": "focal",
}
#: The training-mask corruptions of `noise` (``losslab data noise SPEC`` shows each): clean first.
NOISE_LEVELS = {
    "clean": "none",
    "boundary 1 px": "boundary(px=1)",
    "boundary 2 px": "boundary(px=2)",
    "boundary 4 px": "boundary(px=4)",
    "drop 10 %": "drop(p=0.1)",
}
#: Seeds of the sized-down `noise` (60 runs) and of `noise-full` (90 runs).
NOISE_SEEDS = 2
NOISE_FULL_SEEDS = 3
AUDIT_RUNS = 162


def _wall_time(runs: int) -> str:
    """The wall-time sentence of a study of ``runs`` runs on the recipe of `quick` (tuning included),
    from `audit`'s measured minutes per run on the same recipe (noise costs nothing measurable)."""
    per_run = AUDIT_WALL_SECONDS / 60 / AUDIT_RUNS
    return (
        f"Wall time: about {runs * per_run:.0f} min for its {runs} runs (tuning included) with --workers 2 on a "
        f"2-core AMD EPYC (Zen 4, bf16), at the {per_run:.2f} min per run that audit's {AUDIT_RUNS} runs of the "
        "same recipe took there (an estimate; CPUs without native bf16 take about 3x as long)."
    )


def _tuned_runs(seeds: int) -> int:
    """Runs per configuration of a study tuned as `quick`: the tuning runs and the verdict seeds."""
    return len(QUICK_TUNE["grid"]["lr"]) * QUICK_TUNE["seeds"] + seeds


def _noise_study(name: str, seeds: int, size: str) -> dict[str, Any]:
    """`noise` / `noise-full`: which mask loss loses least when the training masks are wrong, on the
    recipe of `quick`."""
    return {
        "name": name,
        "description": (
            "Label noise: six mask losses on yolact_lite (the recipe of quick), trained on clean masks, on "
            "masks whose boundaries moved by up to 1, 2 or 4 px, and with 10 % of the instances "
            "unannotated; validation masks stay clean. Each loss against BCE at the same noise level. "
            f"{size} {_wall_time(_tuned_runs(seeds) * len(NOISE_LEVELS) * len(NOISE_LOSSES))}"
        ),
        "dataset": _cpu_dataset(),
        "model": QUICK_MODEL,
        "config": dict(_LITE_CONFIG),
        "grid": {"label_noise": dict(NOISE_LEVELS), "mask_loss": dict(NOISE_LOSSES)},
        "seeds": seeds,
        "baseline": "BCE",
        "tune": QUICK_TUNE,
        "margin": QUICK_MARGIN,
    }


BUILTIN_STUDIES: dict[str, dict[str, Any]] = {
    "quick": {
        "name": "quick",
        "description": (
            "The survey README's nine mask losses on YOLACT with an ImageNet EfficientNet-Lite0 "
            "backbone (yolact_lite) and the synthetic Cigarette-Butts-like data, 3 seeds, sized for "
            "a 2-core CPU (--workers 2)."
        ),
        "dataset": _cpu_dataset(),
        "model": QUICK_MODEL,
        "config": dict(_LITE_CONFIG),
        "grid": {"mask_loss": dict(README_LOSSES)},
        "seeds": QUICK_SEEDS,
        "baseline": "BCE",
        "tune": QUICK_TUNE,
        "margin": QUICK_MARGIN,
    },
    "readme": {
        "name": "readme",
        "description": (
            "The survey README's nine configurations at the paper's scale: YOLACT++ R-101 "
            "(yolact_plus_base), 512 px, 2,000 training images. For GPUs."
        ),
        "dataset": PAPER_DATASET,
        "model": "yolact_plus_base",
        # The README's BCE row (83.65) is Table I's batch-8 row: the README ran at batch 8.
        "config": {**SURVEY_CONFIG, **survey_batch(8)},
        "grid": {"mask_loss": dict(README_LOSSES)},
        "seeds": 3,
        "baseline": "BCE",
        "notes": SURVEY_NOTES,
        "published": "yolact_loss_survey",
    },
    "paper-batch": {
        "name": "paper-batch",
        "description": (
            "Table I of the paper: YOLACT++ with BCE at batch sizes 2, 8 and 16, as the survey's train.py "
            "ran them (iterations autoscaled, batch norm frozen below 6 images per GPU on its 2 GPUs). For GPUs."
        ),
        "dataset": PAPER_DATASET,
        "model": "yolact_plus_base",
        "config": {**SURVEY_CONFIG, "mask_loss": "bce"},
        "grid": {"variants": {f"batch {b}": survey_batch(b) for b in (2, 8, 16)}},
        "seeds": 3,
        "baseline": "batch 8",
        "notes": SURVEY_NOTES,
        "published": "yolact_loss_survey",
    },
    "paper-single": {
        "name": "paper-single",
        "description": (
            "Table II of the paper: single mask losses on YOLACT++ at batch 16, Huber with delta "
            "1, 2 and 3 (on probabilities these are one and the same loss: |p - g| <= 1)."
        ),
        "dataset": PAPER_DATASET,
        "model": "yolact_plus_base",
        "config": {**SURVEY_CONFIG, **survey_batch(16)},
        "grid": {
            "mask_loss": {
                "BCE": "bce",
                "HL (δ=1)": "huber(delta=1)",
                "HL (δ=2)": "huber(delta=2)",
                "HL (δ=3)": "huber(delta=3)",
                "LCDL": "log_cosh_dice",
                "MSE": "mse",
            }
        },
        "seeds": 3,
        "baseline": "BCE",
        "notes": SURVEY_NOTES,
        "published": "yolact_loss_survey",
    },
    "paper-hybrid": {
        "name": "paper-hybrid",
        "description": "Table III of the paper: every weighted hybrid alpha*Loss1 + beta*Loss2, against BCE.",
        "dataset": PAPER_DATASET,
        "model": "yolact_plus_base",
        "config": {**SURVEY_CONFIG, **survey_batch(16)},
        "grid": {"mask_loss": _hybrid_losses()},
        "seeds": 3,
        "baseline": "BCE",
        "notes": SURVEY_NOTES,
        "published": "yolact_loss_survey",
    },
    "audit": {
        "name": "audit",
        "description": (
            "The survey's code as it ran against the losses it meant, row by row (its README and Tables "
            "II-III): its Dice was a per-pixel ratio (pixel_dice, smooth 0.1) and its Log-Cosh-Dice "
            "log-cosh of that ratio; its MSE configuration set `use_MSE_loss` while the code reads "
            "`use_mse_loss` (so it trained plain BCE); its Huber on probabilities is 0.5*MSE for any "
            "delta >= 1; its hybrids added the second loss on the uncropped mask (YOLACT's "
            "mask_proto_double_loss), beside the same hybrids in the crop. " + _wall_time_audit()
        ),
        "dataset": _cpu_dataset(),
        "model": QUICK_MODEL,
        "config": dict(_LITE_CONFIG),
        "grid": {"mask_loss": {**AUDIT_SINGLE, **_audit_hybrids()}},
        "seeds": 3,
        "baseline": "BCE",
        "tune": QUICK_TUNE,
        "margin": QUICK_MARGIN,
        "notes": [
            "'MSE (as run: BCE)' is the same configuration as 'BCE': its numbers are the BCE runs.",
            "Huber on probabilities is written 0.5*mse (|p - g| <= 1 <= delta): the survey's Huber rows, its "
            "HL terms and its delta = 1, 2, 3 are that loss, so rows the survey ran as different "
            "configurations share runs here (HL + BCE at α is MSE + BCE at α/2, as run and in the crop).",
            "'as run': the first loss of 'α·Loss1 + β·Loss2' on the uncropped prototype-resolution mask, "
            "summed and divided by its h·w (uncropped(...)), the second in the crop divided by the box "
            "area, as the survey's config (mask_proto_double_loss) trained them; 'in crop': both terms "
            "in the crop, as the paper's formula reads.",
        ],
        "published": "yolact_loss_survey",
    },
    "maskrcnn-custom": {
        "name": "maskrcnn-custom",
        "description": (
            "The Mask R-CNN custom-mask-loss page: BCE, soft Dice (eps 1e-6) and label-smoothing "
            "BCE (0.05) on maskrcnn_tiny."
        ),
        "dataset": _cpu_dataset(),
        "model": "maskrcnn_tiny",
        "config": dict(_CPU_CONFIG),
        "grid": {
            "mask_loss": {
                "BCE": "bce",
                "Soft Dice": "dice(smooth=0.000001)",
                "Label smoothing BCE": "label_smoothing_bce(smoothing=0.05)",
            }
        },
        "seeds": 2,
        "baseline": "BCE",
    },
    "masknet-depth": {
        "name": "masknet-depth",
        "description": (
            "The small mask + depth network's notes: MaskNet's mask loss (BCE, SSIM, Dice), then depth + mask "
            "with the notes' three combinations of a depth loss and a mask loss."
        ),
        "dataset": _cpu_dataset(),
        "model": None,
        "config": dict(_CPU_CONFIG),
        "grid": {
            "variants": {
                "MaskNet: BCE": {"model": "masknet", "mask_loss": "bce"},
                "MaskNet: SSIM": {"model": "masknet", "mask_loss": "ssim"},
                "MaskNet: Dice": {"model": "masknet", "mask_loss": "dice"},
                "Depth: RMSE + (BCE & Dice)": {
                    "model": "depthmask_tiny",
                    "depth_loss": "2*rmse",
                    "mask_loss": "bce + 2*dice",
                },
                "Depth: SSIM + Dice": {"model": "depthmask_tiny", "depth_loss": "2*ssim", "mask_loss": "dice"},
                "Depth: RMSE + BCE": {"model": "depthmask_tiny", "depth_loss": "2*rmse", "mask_loss": "bce"},
            }
        },
        "seeds": 2,
        "baseline": "MaskNet: BCE",
    },
    "noise": _noise_study("noise", NOISE_SEEDS, "Sized down: 2 seeds (noise-full is the same grid with 3)."),
    "noise-full": _noise_study("noise-full", NOISE_FULL_SEEDS, "The full grid: 3 seeds (noise is it with 2)."),
    "maskrcnn-noise": {
        "name": "maskrcnn-noise",
        "description": (
            "The Mask R-CNN custom-mask-loss page's losses (BCE, soft Dice, label-smoothing BCE 0.05) on "
            "maskrcnn_tiny, trained on clean masks and on masks whose boundaries moved by up to 2 and 4 px; "
            "validation masks stay clean. 2 seeds, each loss against BCE at the same noise level. "
            "Wall time not measured."
        ),
        "dataset": _cpu_dataset(),
        "model": "maskrcnn_tiny",
        "config": dict(_CPU_CONFIG),
        "grid": {
            "label_noise": {"clean": "none", "boundary 2 px": "boundary(px=2)", "boundary 4 px": "boundary(px=4)"},
            "mask_loss": {
                "BCE": "bce",
                "Soft Dice": "dice(smooth=0.000001)",
                "Label smoothing BCE": "label_smoothing_bce(smoothing=0.05)",
            },
        },
        "seeds": 2,
        "baseline": "BCE",
    },
}
