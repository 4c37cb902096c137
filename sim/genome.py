"""Genome files: one flat float32 vector + JSON metadata, stored as safetensors (never pickle).

A genome is either an SR-GHN (`kind="srghn"`, the vector is the hypernetwork and `model` holds its
config) or a plain policy (`kind="policy"`, the vector is the MLP weights). Both carry the
PolicySpec, so the runtime can always obtain a numpy policy.

The id is a content hash: sha256 over the vector bytes and the canonical JSON of what gives them
meaning (kind, policy spec, model config). Lineage (parent id, generation), the DriftSpec hash it
was evolved under, a fitness summary and a creation time ride along in the metadata but are not
part of the id, so the same weights always get the same id.

Loading verifies the shape against the metadata and, when the caller knows it, the expected id.
Writes are atomic (temporary file + fsync + rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from sim.atomicio import atomic_write_bytes, canonical_json, dataclass_from_mapping
from sim.policy import PolicySpec

META_KEY = "driftgate"
FORMAT_VERSION = 1
# Larger files are refused before they are read (the largest shipped genome is ~0.3 MB).
MAX_GENOME_BYTES = 64 << 20


class GenomeFileError(ValueError):
    """A genome file is missing, corrupt, or does not match what its metadata (or the caller) says."""


def content_id(vector: np.ndarray, kind: str, policy_spec: PolicySpec, model: dict | None) -> str:
    vec = np.ascontiguousarray(vector, dtype=np.float32)
    h = hashlib.sha256()
    h.update(canonical_json({"kind": kind, "policy": json.loads(policy_spec.to_json()),
                             "model": model or {}}).encode())
    h.update(vec.tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Genome:
    """A flat parameter vector with everything needed to interpret it and trace where it came from."""

    vector: np.ndarray
    policy_spec: PolicySpec
    kind: str = "srghn"
    model: dict | None = None
    parent_id: str | None = None
    generation: int = 0
    drift_hash: str | None = None
    fitness: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        vec = np.ascontiguousarray(self.vector, dtype=np.float32).reshape(-1)
        object.__setattr__(self, "vector", vec)
        if self.kind not in ("srghn", "policy"):
            raise GenomeFileError(f"genome kind must be 'srghn' or 'policy', got {self.kind!r}")
        if self.kind == "policy" and vec.size != self.policy_spec.num_params:
            raise GenomeFileError(f"policy genome has {vec.size} values, its PolicySpec needs "
                                  f"{self.policy_spec.num_params}")
        if not np.all(np.isfinite(vec)):
            raise GenomeFileError("genome has non-finite values")

    @property
    def id(self) -> str:
        return content_id(self.vector, self.kind, self.policy_spec, self.model)

    def with_lineage(self, **kw: Any) -> "Genome":
        return replace(self, **kw)

    def metadata(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "kind": self.kind,
            "policy_spec": json.loads(self.policy_spec.to_json()),
            "model": self.model or {},
            "parent_id": self.parent_id,
            "generation": int(self.generation),
            "drift_hash": self.drift_hash,
            "fitness": self.fitness,
            "created": float(self.created),
            "num_params": int(self.vector.size),
        }


def genome_file_bytes(genome: Genome) -> bytes:
    """The safetensors bytes `save_genome` writes (ValueError for metadata JSON cannot carry)."""
    return save({"genome": genome.vector}, metadata={META_KEY: canonical_json(genome.metadata())})


def save_genome(genome: Genome, path: str | os.PathLike) -> Path:
    """Write atomically; returns the path. The file never exists half-written."""
    return atomic_write_bytes(path, genome_file_bytes(genome))


def read_metadata(data: bytes) -> dict:
    """The driftgate metadata of a safetensors blob, without trusting anything else in it."""
    if len(data) < 8:
        raise GenomeFileError("file too short to be safetensors")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise GenomeFileError("corrupt safetensors header length")
    try:
        header = json.loads(data[8:8 + n])
        return json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError) as e:
        raise GenomeFileError(f"no driftgate metadata in file: {e}") from e


def read_genome_bytes(path: str | os.PathLike, *, follow_symlinks: bool = True) -> bytes:
    """A genome file's bytes: a regular file of at most MAX_GENOME_BYTES, read without blocking
    (`sim.safeio`); `follow_symlinks=False` refuses a symlink (files inside a registry)."""
    from sim.safeio import read_bounded
    try:
        return read_bounded(path, MAX_GENOME_BYTES, follow_symlinks=follow_symlinks, what="genome file")
    except OSError as e:
        raise GenomeFileError(str(e)) from None


def load_genome(path: str | os.PathLike, expected_id: str | None = None, *,
                follow_symlinks: bool = True) -> Genome:
    """Load and verify a genome file (shape vs metadata, content hash vs metadata and `expected_id`)."""
    path = Path(path)
    return genome_from_bytes(read_genome_bytes(path, follow_symlinks=follow_symlinks), path, expected_id)


def genome_from_bytes(data: bytes, path: str | os.PathLike = "<bytes>", expected_id: str | None = None) -> Genome:
    """Parse and verify a genome file's bytes (see `load_genome`); `path` only names it in errors."""
    meta = read_metadata(data)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as e:
        raise GenomeFileError(f"corrupt genome file {path}: {e}") from e
    if set(tensors) != {"genome"}:
        raise GenomeFileError(f"{path}: expected exactly one tensor 'genome', found {sorted(tensors)}")
    vec = tensors["genome"]
    if vec.dtype != np.float32 or vec.ndim != 1:
        raise GenomeFileError(f"{path}: genome must be a 1-D float32 vector, got {vec.dtype} {vec.shape}")
    if meta.get("format") != FORMAT_VERSION:
        raise GenomeFileError(f"{path}: unsupported genome format {meta.get('format')!r}")
    if vec.size != meta.get("num_params"):
        raise GenomeFileError(f"{path}: vector has {vec.size} values, metadata says {meta.get('num_params')}")
    try:
        spec = dataclass_from_mapping(PolicySpec, meta.get("policy_spec"), what="policy_spec")
        genome = Genome(vector=vec, policy_spec=spec, kind=meta["kind"], model=meta.get("model") or None,
                        parent_id=meta.get("parent_id"), generation=int(meta.get("generation", 0)),
                        drift_hash=meta.get("drift_hash"), fitness=meta.get("fitness") or {},
                        created=float(meta.get("created", 0.0)))
    except (KeyError, TypeError, ValueError) as e:
        raise GenomeFileError(f"{path}: bad genome metadata: {e}") from e
    if genome.id != meta.get("id"):
        raise GenomeFileError(f"{path}: content hash mismatch (file says {meta.get('id')}, "
                              f"contents hash to {genome.id})")
    if expected_id is not None and genome.id != expected_id:
        raise GenomeFileError(f"{path}: expected genome {expected_id}, file holds {genome.id}")
    return genome
