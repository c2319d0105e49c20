"""In-process batch generation with ``vllm.LLM`` (``--backend vllm``).

For a GPU machine with the ``[vllm]`` extra: the model is loaded once and
each batch of cases is one ``LLM.chat`` call, which vLLM schedules with
continuous batching. Prompts, image payloads and report parsing are those
of the ``openai`` backend, so the two give comparable outputs. A LoRA
adapter (Skin-R1 is a LoRA on Qwen2.5-VL-7B) is applied per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairderm.errors import FairdermError, InputError
from fairderm.inference._classifiers import folder_identity
from fairderm.inference._predictor import Predictor, PredictorOutput, reject_unknown_options
from fairderm.inference._prompt import (
    DEFAULT_MAX_SIDE,
    chat_messages,
    data_url,
    encode_image,
    image_preprocessing,
    load_prompt,
    prompt_identity,
    render_prompt,
)

_ENGINE_OPTIONS = (
    "tensor_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "dtype",
    "limit_mm_per_prompt",
    "max_num_seqs",
    "enforce_eager",
)
_OPTIONS = (
    "prompt",
    "system",
    "max_tokens",
    "temperature",
    "seed",
    "max_side",
    "lora",
    "batch_size",
    "revision",
    *_ENGINE_OPTIONS,
)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise FairdermError(
            "--backend vllm needs vLLM: pip install 'fairderm[vllm]' on a machine with a CUDA GPU "
            "(or serve the model with `vllm serve` and use --backend openai)"
        ) from exc
    return vllm


def _require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise FairdermError(
            "--backend vllm needs a CUDA GPU; none is visible here "
            "(serve the model elsewhere with `vllm serve` and use --backend openai --endpoint URL)"
        )


class VLLMPredictor(Predictor):
    """A vision-language model run in this process by ``vllm.LLM``."""

    backend = "vllm"
    writes_text = True
    gives_probabilities = False

    def __init__(
        self,
        model: str,
        labels: Sequence[str],
        *,
        prompt: str | os.PathLike[str] | None = None,
        system: str | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int = 0,
        max_side: int = DEFAULT_MAX_SIDE,
        lora: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        revision: str | None = None,
        **engine: Any,
    ) -> None:
        vllm = _import_vllm()
        _require_gpu()
        self.model_name = str(model)
        self.labels = list(labels)
        self.classes = list(labels)
        self.prompt = render_prompt(load_prompt(prompt), self.labels)
        self.system = system
        self.max_side = int(max_side)
        self.batch_size = int(batch_size)
        self.revision = revision
        self.engine = dict(engine)
        self.lora = Path(lora) if lora else None
        if self.lora is not None and not self.lora.is_dir():
            raise InputError("LoRA adapter folder not found", source=str(self.lora))
        self.generation = {
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": int(seed),
        }
        self.llm = vllm.LLM(
            model=self.model_name,
            seed=int(seed),
            revision=revision,
            enable_lora=self.lora is not None,
            **self.engine,
        )
        self.sampling = vllm.SamplingParams(**self.generation)
        self.lora_request = None
        if self.lora is not None:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("adapter", 1, str(self.lora))

    def preprocess(self, path: Path | None) -> tuple[bytes, str]:
        return encode_image(path, self.max_side)

    def collate(self, items: list[Any]) -> list[Any]:
        return list(items)

    def predict(self, inputs: list[tuple[bytes, str]], image_ids: Sequence[str]) -> PredictorOutput:
        conversations = [
            chat_messages(self.prompt, data_url(image), self.system) for image in inputs
        ]
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"sampling_params": self.sampling, "use_tqdm": False}
        if self.lora_request is not None:
            kwargs["lora_request"] = self.lora_request
        outputs = self.llm.chat(conversations, **kwargs)
        # vLLM batches the whole list: only the batch's mean time per case is known
        per_case = (time.perf_counter() - started) / max(1, len(inputs))
        if len(outputs) != len(inputs):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} prompts")
        texts, prompt_tokens, completion_tokens = [], [], []
        for output in outputs:
            completion = output.outputs[0] if output.outputs else None
            texts.append(completion.text if completion is not None else "")
            prompt_tokens.append(len(output.prompt_token_ids or []))
            completion_tokens.append(len(completion.token_ids) if completion is not None else 0)
        n = len(inputs)
        return PredictorOutput(
            text=texts,
            extras={
                "latency_s": [round(per_case, 4)] * n,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "attempts": [1] * n,
            },
        )

    def identity(self) -> dict[str, Any]:
        local = Path(self.model_name)
        files = folder_identity(local) if local.is_dir() else {}
        return {
            "backend": "vllm",
            "model": self.model_name,
            "revision": self.revision,
            "files": files,
            "lora": {"path": str(self.lora), "files": folder_identity(self.lora)}
            if self.lora
            else None,
            "engine": self.engine,
            "generation": self.generation,
            "system": self.system,
            **prompt_identity(self.prompt),
        }

    def preprocessing(self) -> dict[str, Any]:
        return image_preprocessing(self.max_side)


def vllm_predictor(
    model: str | None, *, labels: Sequence[str], device: Any = None, **options: Any
) -> VLLMPredictor:
    """Factory of the ``vllm`` backend; engine options go to ``vllm.LLM``."""
    reject_unknown_options(options, _OPTIONS, "vllm")
    if model is None:
        raise InputError(
            "--backend vllm needs --model (a local folder or a model name vLLM can load offline)"
        )
    return VLLMPredictor(model, labels, **options)
