"""Data pipeline throughput: prepared shards + batched device augmentation vs per-sample PIL.

Side by side in one run, over the same synthetic faces (written once as PNG files and once
as prepared Parquet shards):
  ours - read_prepared (shards decoded once into one uint8 array), moved to the device;
         then per batch: index, augment(level strong), normalize
  pil  - a torch DataLoader with --workers workers over the PNG files; per sample: PIL
         open, random crop 0.69-0.99, rotation ±20°, contrast ×[0.6, 1.4], brightness,
         3×3 Gaussian blur, resize, noise, cutout (the strong recipe), to a tensor
Images/s over --epochs full passes after a short warm-up; the ratio ours/pil is the figure
to trust. The one-time load (read + decode + copy to the device) is printed separately.

    python benchmarks/data_pipeline.py [--count 4000] [--size 64] [--batch 128] [--epochs 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.data.prepared import read_prepared, write_prepared
from hmtl.trainables.data.synthetic import render_faces


class PilFaces(torch.utils.data.Dataset):
    """Per-sample decode and augment, the way a torchvision-style pipeline does it."""

    def __init__(self, files: list[Path], labels: np.ndarray, size: int):
        self.files, self.labels, self.size = files, labels, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        rng = random.Random()
        with Image.open(self.files[i]) as img:
            img = img.convert("L")
        side = img.width * rng.uniform(0.69, 0.99)
        left = rng.uniform(0, img.width - side)
        top = rng.uniform(0, img.height - side)
        img = img.crop((round(left), round(top), round(left + side), round(top + side)))
        img = img.rotate(rng.uniform(-20, 20), Image.Resampling.BILINEAR)
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
        img = ImageEnhance.Brightness(img).enhance(1 + rng.uniform(-0.1, 0.1))
        img = img.filter(ImageFilter.GaussianBlur(1.5))
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        x = np.asarray(img, np.float32) / 255.0
        x = x + np.random.default_rng().normal(0, rng.uniform(0, 0.05), x.shape)
        cut = self.size // 6
        r, c = rng.randrange(self.size - cut), rng.randrange(self.size - cut)
        x[r : r + cut, c : c + cut] = x.mean()
        x = torch.from_numpy(np.clip(x, 0, 1).astype(np.float32))[None]
        return (x - 0.5) / 0.5, int(self.labels[i])


def run_ours(folder: Path, device: torch.device, batch: int, epochs: int) -> tuple[float, float]:
    """(seconds to load, images/s of augmenting on the device)."""
    start = time.perf_counter()
    prepared = read_prepared(folder)
    images = torch.from_numpy(prepared.images).permute(0, 3, 1, 2).contiguous().to(device)
    labels = torch.from_numpy(prepared.labels["expression"]).long().to(device)
    sync(device)
    loaded = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)

    def epoch(limit: int | None = None) -> int:
        order = torch.randperm(len(images), generator=gen)
        steps = len(images) // batch if limit is None else limit
        for k in range(steps):
            index = order[k * batch : (k + 1) * batch].to(device)
            x = normalize(augment(images[index], "strong", generator=gen))
            y = labels[index]
            del x, y
        return steps * batch

    epoch(limit=3)  # warm-up
    sync(device)
    start = time.perf_counter()
    seen = sum(epoch() for _ in range(epochs))
    sync(device)
    return loaded, seen / (time.perf_counter() - start)


def run_pil(files: list[Path], labels: np.ndarray, size: int, args) -> float:
    loader = torch.utils.data.DataLoader(
        PilFaces(files, labels, size),
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        drop_last=True,
    )
    for k, _ in enumerate(loader):  # warm-up: workers started, caches filled
        if k == 2:
            break
    start = time.perf_counter()
    seen = 0
    for _ in range(args.epochs):
        for x, _y in loader:
            seen += len(x)
    return seen / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    faces = render_faces(args.count, size=args.size, channels=1, seed=0)
    with tempfile.TemporaryDirectory(prefix="hmtl-bench-") as tmp:
        root = Path(tmp)
        files = []
        for i, image in enumerate(faces.images):
            files.append(root / "png" / f"{i:06d}.png")
            files[-1].parent.mkdir(exist_ok=True)
            Image.fromarray(image[:, :, 0]).save(files[-1])
        folder = write_prepared(
            root / "shards", "bench", "synthetic", faces.images, {"expression": faces.expression}
        )
        loaded, ours = run_ours(folder, device, args.batch, args.epochs)
        pil = run_pil(files, faces.expression, args.size, args)
    print(
        f"{args.count} faces, {args.size} px grey, batch {args.batch}, {args.epochs} epochs, "
        f"device {device}, torch threads {torch.get_num_threads()}, PIL workers {args.workers}"
    )
    print(f"  ours: load (read + decode + to device) {loaded:.2f} s once")
    print(f"  ours: shards in memory + augment on {device.type}  {ours:10.0f} images/s")
    print(f"  pil:  DataLoader, per-sample PIL decode+augment    {pil:10.0f} images/s")
    print(f"  ratio ours/pil  {ours / pil:.1f}x")


if __name__ == "__main__":
    main()
