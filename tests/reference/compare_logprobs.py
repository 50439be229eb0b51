"""percetrain's log-probs against transformers' on one random Llama (GQA, untied, non-unit norms)
on a chosen device and dtype: the GPU check's comparison (scripts/gpu_check.sh), also runnable on
the CPU. Not a CTest test (Reference.models covers the CPU in fp32 for every architecture).
  PERCETRAIN_BINARY=build-gpu/percetrain python3 tests/reference/compare_logprobs.py --device cuda --dtype bfloat16
fp32 must agree to 1e-5 on the CPU and 1e-4 on CUDA (TF32 off on both sides); bf16, where both
sides round every product to 8 bits of mantissa in their own order, to a mean |diff| of 0.05."""
import argparse
import json
import sys

import numpy as np
import torch

from common import Checks, Workdir, percetrain
from peft_util import make_base, random_ids


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    a = p.parse_args()
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    checks = Checks(f"log-probs on {a.device} in {a.dtype} against transformers {transformers.__version__}")
    with Workdir("compare-logprobs") as work:
        base = make_base(work / "llama", "llama", seed=3)
        ids = random_ids(96, seed=4)
        model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, a.dtype)).to(a.device).eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=a.device)).logits[0].float()
        want = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:], device=a.device)[:, None])[:, 0]
        out = percetrain("logprobs", "--model", base, "--ids", ",".join(map(str, ids)), "--json",
                         "--device", a.device, "--dtype", a.dtype).stdout
        got = np.array([t["logprob"] for t in json.loads(out)["tokens"][1:]])
        want = want.double().cpu().numpy()
        if a.dtype == "float32":
            checks.close("fp32 log-probs", got, want, atol=1e-5 if a.device == "cpu" else 1e-4)
        else:
            mean = float(np.abs(got - want).mean())
            checks.true("bf16 log-probs", mean < 0.05,
                        f"mean |diff| {mean:.3g}, worst {float(np.abs(got - want).max()):.3g} over {got.size} tokens")
    checks.finish()


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    main()
