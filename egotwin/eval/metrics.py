"""Distribution and retrieval metrics over evaluator features: FID (Frechet distance), R-Precision, MM-Dist,
diversity (HumanML3D protocol, Guo et al. 2022), and the binary F1 behind HandScore."""

from __future__ import annotations

import numpy as np
import scipy.linalg

R_PRECISION_BATCH = 32
"""HumanML3D protocol: each motion is ranked against its own text and 31 mismatched texts of its batch."""


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need a (N >= 2, F) feature array, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the Frechet distance of two Gaussians (FID's formula, with
    scipy.linalg.sqrtm as in pytorch-fid; a tiny diagonal offset is added when the product is singular)."""
    diff = np.asarray(mu1) - np.asarray(mu2)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (N, F) and (M, F)."""
    return frechet_distance(*gaussian_statistics(features_a), *gaussian_statistics(features_b))


def r_precision(
    motion_embeddings: np.ndarray, text_embeddings: np.ndarray, top_k: int = 3, batch_size: int = R_PRECISION_BATCH
) -> np.ndarray:
    """Top-1..top_k retrieval accuracy of the matching text among the texts of its batch (N rows paired by index,
    cut into consecutive batches of `batch_size`; a last incomplete batch is dropped, as in HumanML3D) -> (top_k,)."""
    motion_embeddings, text_embeddings = np.asarray(motion_embeddings), np.asarray(text_embeddings)
    if motion_embeddings.shape != text_embeddings.shape:
        raise ValueError(f"paired embeddings must match in shape: {motion_embeddings.shape} vs {text_embeddings.shape}")
    num_batches = len(motion_embeddings) // batch_size
    if num_batches == 0:
        raise ValueError(f"R-Precision needs at least {batch_size} pairs, got {len(motion_embeddings)}")
    hits = np.zeros(top_k)
    for b in range(num_batches):
        rows = slice(b * batch_size, (b + 1) * batch_size)
        distances = np.linalg.norm(motion_embeddings[rows, None] - text_embeddings[None, rows], axis=-1)
        # rank of the true text: how many texts are strictly closer than it
        rank = (distances < np.diag(distances)[:, None]).sum(1)
        hits += [(rank < k).sum() for k in range(1, top_k + 1)]
    return hits / (num_batches * batch_size)


def mm_dist(motion_embeddings: np.ndarray, text_embeddings: np.ndarray) -> float:
    """Mean Euclidean distance between each motion and its own text (rows paired by index)."""
    return float(np.linalg.norm(np.asarray(motion_embeddings) - np.asarray(text_embeddings), axis=-1).mean())


def diversity(embeddings: np.ndarray, num_pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between `num_pairs` random pairs of embeddings (HumanML3D's Diversity, pairs drawn with `seed`)."""
    embeddings = np.asarray(embeddings)
    if len(embeddings) < 2:
        raise ValueError("diversity needs at least 2 embeddings")
    rng = np.random.default_rng(seed)
    first = rng.integers(len(embeddings), size=num_pairs)
    second = (first + rng.integers(1, len(embeddings), size=num_pairs)) % len(embeddings)
    return float(np.linalg.norm(embeddings[first] - embeddings[second], axis=-1).mean())


def binary_f1(predicted: np.ndarray, target: np.ndarray) -> float:
    """F1 of two boolean arrays of equal shape, pooled over all entries; 1.0 when neither has a positive."""
    predicted, target = np.asarray(predicted, bool), np.asarray(target, bool)
    if predicted.shape != target.shape:
        raise ValueError(f"shapes differ: {predicted.shape} vs {target.shape}")
    true_positive = np.logical_and(predicted, target).sum()
    denominator = predicted.sum() + target.sum()
    return 1.0 if denominator == 0 else float(2 * true_positive / denominator)
