"""The reference arm of `active_scoring.py`: pool scoring the way DISTIL does it.

A re-implementation (not a copy) of what `decile-team/distil`'s strategies do
(`distil/active_learning_strategies/*.py`, the torch-Dataset version ActiveFER's loop calls;
PROTOCOLS.md section 5), on hmtl's model and images:

- a torch `Dataset` returns one image per `__getitem__`, the eval transform applied per item;
  a `DataLoader(batch_size=...)` collates; each batch goes `.to(device)`; outputs are collected
  batch by batch and concatenated (`predict_prob`, `get_embedding`, `get_grad_embedding`);
- BADGE builds the dense N x (K*D) last-layer gradient embedding and runs DISTIL's
  `init_centers` (per-pick distances to the newest centre, a Python loop over the pool to
  lower them, `scipy.stats.rv_discrete` for the draw);
- CoreSet builds the full pool x labelled distance matrix, then furthest-first;
- GLISTER (`typeOf="Diversity"`) builds the dense N x (K*(D+1)) gradients and the full N x N
  kernel in 200 x 200 blocks through an (n, m, K*(D+1)) broadcast, copies `sim_mat[remaining]`
  at every pick, and recomputes the validation gradient densely after each pick;
- BALD runs T full forward passes in `model.train()` (dropout on, and batch norm on batch
  statistics, as DISTIL does; on a copy of the model so the others are unaffected);
- DeepFool runs image by image, K backward passes per iteration.

Each `select` returns positions into the pool, like hmtl's strategies.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from hmtl.trainables.active.scoring import last_layer
from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.network import FaceModel, pool_features


class TooLarge(Exception):
    """DISTIL's way needs an allocation above the cap: the cell is skipped, not run."""


@dataclass
class Args:
    device: torch.device
    batch_size: int
    seed: int
    cap_bytes: int
    passes: int = 10
    dropout: float = 0.5
    max_iter: int = 50
    lam: float = 10.0
    lr: float = 0.01
    kernel_batch_size: int = 200


class EvalImages(Dataset):
    """One eval-transformed, normalised image per item (DISTIL's data handler)."""

    def __init__(self, images: torch.Tensor, size: int, labels: torch.Tensor | None = None):
        self.images, self.size, self.labels = images, size, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = normalize(augment(self.images[i : i + 1], "eval", out_size=self.size)[0])
        return x if self.labels is None else (x, self.labels[i])


class Pseudo(Dataset):
    """Pool items with predicted labels (GLISTER's `AddLabelDataset`)."""

    def __init__(self, pool: EvalImages, labels: torch.Tensor):
        self.pool, self.labels = pool, labels

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, i: int):
        return self.pool[i], self.labels[i]


class Net(nn.Module):
    """hmtl's model behind DISTIL's net interface: `forward(x, last, freeze)`."""

    def __init__(self, model: FaceModel, dropout: float = 0.0):
        super().__init__()
        self.backbone = model.backbone
        self.drop = nn.Dropout(dropout)  # the model's own is 0: BALD's copy raises it
        self.linear = last_layer(model)

    def get_embedding_dim(self) -> int:
        return self.linear.in_features

    def forward(self, x: torch.Tensor, last: bool = False, freeze: bool = False):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not freeze):
            e = pool_features(self.backbone.forward_features(x))
        out = self.linear(self.drop(e))
        return (out, e) if last else out


def loader(ds: Dataset, args: Args) -> DataLoader:
    return DataLoader(ds, batch_size=args.batch_size, shuffle=False)


def refuse_above(nbytes: int, what: str, args: Args) -> None:
    if nbytes > args.cap_bytes:
        raise TooLarge(f"{what}: would need {nbytes / 2**30:.2f} GiB in one allocation")


@torch.no_grad()
def predict_prob(net: Net, ds: Dataset, args: Args) -> torch.Tensor:
    net.eval()
    probs = [F.softmax(net(x.to(args.device)), dim=1) for x in loader(ds, args)]
    return torch.cat(probs)


@torch.no_grad()
def get_embedding(net: Net, ds: Dataset, args: Args) -> torch.Tensor:
    net.eval()
    return torch.cat([net(x.to(args.device), last=True)[1] for x in loader(ds, args)])


def grad_embedding(net: Net, ds: Dataset, predict: bool, kind: str, args: Args) -> torch.Tensor:
    """DISTIL's dense last-layer gradient embedding ("linear" or "bias_linear")."""
    dim, classes = net.get_embedding_dim(), net.linear.out_features
    width = dim * classes + (classes if kind == "bias_linear" else 0)
    refuse_above(len(ds) * width * 4, f"{len(ds)} x {width} gradient embedding", args)
    out = torch.zeros(len(ds), width, device=args.device)
    done = 0
    for batch in loader(ds, args):
        x, y = (batch, None) if predict else batch
        logits, e = net(x.to(args.device), last=True, freeze=True)
        targets = logits.max(1)[1] if predict else y.to(args.device)
        loss = F.cross_entropy(logits, targets, reduction="sum")
        l0 = torch.autograd.grad(loss, logits)[0]
        l1 = torch.repeat_interleave(l0, dim, dim=1) * e.repeat(1, classes)
        g = l1 if kind == "linear" else torch.cat([l0, l1], dim=1)
        out[done : done + len(g)] = g.detach()
        done += len(g)
    return out


def top_scores(scores: torch.Tensor, budget: int) -> list[int]:
    """The `budget` highest scores, ties by position (hmtl's `top`, so picks can be compared)."""
    return torch.sort(scores.cpu(), descending=True, stable=True).indices[:budget].tolist()


def entropy(net, pool, labelled, budget, args) -> list[int]:
    p = predict_prob(net, pool, args)
    return top_scores(-(p * torch.log(p)).sum(1), budget)


def margin(net, pool, labelled, budget, args) -> list[int]:
    p = predict_prob(net, pool, args).sort(dim=1, descending=True).values
    return top_scores(p[:, 1] - p[:, 0], budget)


def least_confidence(net, pool, labelled, budget, args) -> list[int]:
    return top_scores(-predict_prob(net, pool, args).max(1).values, budget)


def random(net, pool, labelled, budget, args) -> list[int]:
    return np.random.default_rng(args.seed).choice(len(pool), budget, replace=False).tolist()


@torch.no_grad()
def bald(net, pool, labelled, budget, args) -> list[int]:
    noisy = copy.deepcopy(net)
    noisy.drop = nn.Dropout(args.dropout)
    noisy.train()  # DISTIL: dropout on, and batch norm on batch statistics too
    torch.manual_seed(args.seed)
    probs = torch.stack(
        [
            torch.cat([F.softmax(noisy(x.to(args.device)), 1) for x in loader(pool, args)])
            for _ in range(args.passes)
        ]
    )
    pb = probs.mean(0)
    mean_entropy = (-probs * torch.log(probs)).sum(2).mean(0)
    return top_scores((-pb * torch.log(pb)).sum(1) - mean_entropy, budget)


def coreset(net, pool, labelled, budget, args) -> list[int]:
    u = get_embedding(net, pool, args)
    refuse_above(len(pool) * len(labelled) * 4, "pool x labelled distances", args)
    l_emb = get_embedding(net, EvalImages(labelled.images, labelled.size), args)
    min_dist = torch.cdist(u, l_emb).min(dim=1)[0]
    picked = []
    for _ in range(budget):
        idx = int(torch.argmax(min_dist))
        picked.append(idx)
        min_dist = torch.minimum(min_dist, torch.cdist(u, u[[idx], :])[:, 0])
    return picked


def badge(net, pool, labelled, budget, args) -> list[int]:
    net.eval()
    g = grad_embedding(net, pool, True, "linear", args).cpu().numpy()
    return init_centers(g, budget, args)


def init_centers(x: np.ndarray, k: int, args: Args) -> list[int]:
    """DISTIL's k-means++ seeding, step for step (its per-row Python loops included)."""
    pdist = nn.PairwiseDistance(p=2)
    rng = np.random.RandomState(args.seed)
    ind = int(np.argmax([np.linalg.norm(s, 2) for s in x]))
    mu, picked, owner, cent = [x[ind]], [ind], [0.0] * len(x), 0
    d2 = None
    while len(mu) < k:
        new = pdist(torch.from_numpy(x).to(args.device), torch.from_numpy(mu[-1]).to(args.device))
        new = torch.flatten(new).cpu().numpy().astype(float)
        if d2 is None:
            d2 = new
        else:
            for i in range(len(x)):
                if d2[i] > new[i]:
                    owner[i] = cent
                    d2[i] = new[i]
        d2 = d2.ravel().astype(float)
        weights = (d2**2) / sum(d2**2)
        draw = stats.rv_discrete(name="custm", values=(np.arange(len(d2)), weights))
        ind = int(draw.rvs(size=1, random_state=rng)[0])
        mu.append(x[ind])
        picked.append(ind)
        cent += 1
    return picked


@torch.no_grad()
def predict(net: Net, ds: Dataset, args: Args) -> torch.Tensor:
    net.eval()
    return torch.cat([net(x.to(args.device)).max(1)[1] for x in loader(ds, args)])


def glister(net, pool, labelled, budget, args) -> list[int]:
    """DISTIL's GLISTER-ACTIVE, `typeOf="Diversity"`, no validation set (as ActiveFER ran it)."""
    net.eval()
    n, dim, k = len(pool), net.get_embedding_dim(), net.linear.out_features
    refuse_above(n * n * 4, f"{n} x {n} similarity kernel", args)
    grads = grad_embedding(net, pool, True, "bias_linear", args)
    lab = EvalImages(labelled.images, labelled.size, labelled.labels)
    prev = grad_embedding(net, lab, False, "bias_linear", args).sum(0).view(1, -1)

    def weight_part(g: torch.Tensor, j: int) -> torch.Tensor:
        return g[0][j * dim + k : (j + 1) * dim + k].view(-1, 1)

    def val_grads(scores: torch.Tensor, labels: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        l0 = scores - F.one_hot(labels, k).float()
        l1 = torch.repeat_interleave(l0, dim, dim=1) * e.repeat(1, k)
        return torch.cat((l0, l1), dim=1)

    # First init: the validation set is the pseudo-labelled pool plus the labelled rows, its
    # logits moved one step along the labelled rows' summed gradient.
    joined = ConcatDataset([Pseudo(pool, predict(net, pool, args).cpu()), lab])
    out = torch.zeros(len(joined), k, device=args.device)
    emb = torch.zeros(len(joined), dim, device=args.device)
    grads_val = torch.zeros(k * (1 + dim), 1, device=args.device)
    done = 0
    with torch.no_grad():
        for x, y in loader(joined, args):
            rows = list(range(done, done + len(y)))
            o, e = net(x.to(args.device), last=True)
            emb[rows] = e
            for j in range(k):
                step = args.lr * (e @ weight_part(prev, j) + prev[0][j])
                out[rows, j] = o[:, j] - step.view(-1)
            grads_val += val_grads(F.softmax(out[rows], 1), y.to(args.device), e).sum(0).view(-1, 1)
            done += len(y)
        grads_val /= n  # DISTIL divides by the pool's size, not the joined set's
        # DISTIL reads every label back through one loader batch of the whole joined set.
        _, y_new = next(iter(DataLoader(joined, shuffle=False, batch_size=len(joined))))
        y_new = y_new.to(args.device)
        sim = kernel(grads, args)
        greedy: list[int] = []
        remain = list(range(n))
        while len(greedy) < budget:
            gains = grads[remain] @ grads_val
            if greedy:
                gains = gains - args.lam * sim[remain][:, greedy].sum(1).view(-1, 1)
            best = remain[int(torch.argmax(gains))]
            greedy.append(best)
            remain.remove(best)
            g = grads[best].view(1, -1)
            for j in range(k):
                out[:, j] = out[:, j] - (args.lr * (emb @ weight_part(g, j) + g[0][j])).view(-1)
            grads_val = val_grads(F.softmax(out, 1), y_new, emb).mean(0).view(-1, 1)
    return greedy


def kernel(grads: torch.Tensor, args: Args) -> torch.Tensor:
    """The dense N x N diversity kernel, block by block through an (n, m, dims) broadcast."""
    size, n = args.kernel_batch_size, len(grads)
    blocks = [grads[i * size : (i + 1) * size] for i in range(math.ceil(n / size))]
    sim = torch.zeros(n, n, device=args.device)
    for i, gi in enumerate(blocks):
        for j, gj in enumerate(blocks):
            a = gi.unsqueeze(1).expand(len(gi), len(gj), gi.shape[1])
            b = gj.unsqueeze(0).expand(len(gi), len(gj), gi.shape[1])
            sim[i * size : i * size + len(gi), j * size : j * size + len(gj)] = torch.exp(
                -torch.pow(a - b, 2).sum(2) / 2
            )
    return sim


def deepfool(net, pool, labelled, budget, args) -> list[int]:
    """DISTIL's adversarial DeepFool: one image at a time, the smallest perturbations first."""
    net.eval()
    k = net.linear.out_features
    dis = np.zeros(len(pool))
    for i in range(len(pool)):
        dis[i] = deepfool_one(pool[i].to(args.device), net, k, args)
    return np.argsort(dis, kind="stable")[:budget].tolist()


def deepfool_one(image: torch.Tensor, net: Net, k: int, args: Args, overshoot=0.02) -> float:
    f_image = net(image[None].detach().requires_grad_(True)).flatten()
    order = f_image.argsort(descending=True)[:k]
    label = order[0]
    r_tot = torch.zeros_like(image)
    x = image[None].clone().requires_grad_(True)
    fs = net(x)
    k_i, loops = label, 0
    while k_i == label and loops < args.max_iter:
        pert, w = math.inf, None
        fs[0, order[0]].backward(retain_graph=True)
        grad_orig = x.grad.clone()
        for c in range(1, k):
            x.grad.zero_()
            fs[0, order[c]].backward(retain_graph=True)
            w_k = x.grad.clone() - grad_orig
            f_k = (fs[0, order[c]] - fs[0, order[0]]).detach()
            pert_k = float(abs(f_k) / torch.sqrt(torch.dot(w_k.flatten(), w_k.flatten())))
            if pert_k < pert:
                pert, w = pert_k, w_k
        r_tot = r_tot + (pert + 1e-4) * w / torch.sqrt(torch.dot(w.flatten(), w.flatten()))
        x = (image + (1 + overshoot) * r_tot).detach().requires_grad_(True)
        fs = net(x)
        k_i = int(np.argmax(fs.detach().cpu().numpy().flatten()))
        loops += 1
    r_tot = (1 + overshoot) * r_tot
    return float(torch.dot(r_tot.flatten(), r_tot.flatten()))


STRATEGIES = {
    "random": random,
    "entropy": entropy,
    "margin": margin,
    "least_confidence": least_confidence,
    "bald": bald,
    "coreset": coreset,
    "badge": badge,
    "glister": glister,
    "deepfool": deepfool,
}
