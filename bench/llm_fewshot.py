"""Few-shot training of an LLM backend on a fixed synthetic task set: held-out accuracy
zero-shot against few-shot, and what each costs in calls and tokens per task.

The task set (prelabel.testing.keyword_tasks, seed 0) has labels that only examples can
teach: each text carries a made-up code word that decides its label. The provider is
prelabel's fake OpenAI-compatible server on loopback, answering right only when the prompt
holds an example with the task's code word (as a model that can use examples would), else
guessing. prelabel serves an LLM backend in process; a training job (/train with the
annotated tasks) holds out a seeded share, evaluates zero-shot against few-shot on it, and
promotes the few-shot version; unseen tasks are then predicted through /predict.

Prints both accuracies (held-out, and on unseen tasks after promotion), their ratio, and
calls and tokens per task for each way of asking. Exits 1 when few-shot is not better.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "src"))

from _llm import BenchBackend

from prelabel.testing import make_runtime, serve_in_process
from prelabel.testing.client import wait_job
from prelabel.testing.fake_openai import FakeOpenAI
from prelabel.testing.keyword_tasks import CONFIG, annotated, examples_help, keyword_tasks


def per_task(arm: dict, n: int) -> str:
    return (
        f"{arm['calls'] / n:.2f} calls, {arm['prompt_tokens'] / n:.0f} prompt + "
        f"{arm['completion_tokens'] / n:.0f} completion tokens per task"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotated", type=int, default=80, help="annotated tasks sent to training")
    parser.add_argument("--eval-calls", type=int, default=40, help="LLM_FEWSHOT_EVAL_CALLS (2 per held-out task)")
    parser.add_argument("--unseen", type=int, default=36, help="new tasks predicted after promotion")
    args = parser.parse_args()

    project = "1.1"
    with FakeOpenAI(responder=examples_help()) as fake, tempfile.TemporaryDirectory() as home:
        rt = make_runtime(
            BenchBackend,
            Path(home),
            {"bench_base_url": fake.base_url, "max_concurrent": 8, "llm_fewshot_eval_calls": args.eval_calls},
        )
        with serve_in_process(rt) as client:
            base = client.post("/setup", json={"project": project, "schema": CONFIG}).json()["model_version"]
            resp = client.post(
                "/train",
                json={
                    "annotations": annotated(keyword_tasks(args.annotated)),
                    "project": project,
                    "label_config": CONFIG,
                },
            )
            job = wait_job(client, resp.json()["job"], timeout=600)
            if job["status"] != "succeeded":
                print(f"training failed: {job['error']}")
                return 1
            result = job["result"]
            evaluation = result["evaluation"]
            n = evaluation["heldout_tasks"]
            zero = evaluation["zero_shot"]
            few = evaluation["few_shot"]
            zero_acc = zero["controls"]["sentiment"]["accuracy"]
            few_acc = few["controls"]["sentiment"]["accuracy"]
            print(f"held-out ({n} of {args.annotated} annotated tasks, seed 0):")
            print(f"  zero-shot accuracy {zero_acc:.3f}  ({per_task(zero, n)})")
            print(f"  few-shot  accuracy {few_acc:.3f}  ({per_task(few, n)})")
            print(
                f"  few-shot / zero-shot accuracy: {few_acc / max(zero_acc, 1e-9):.2f}x; "
                f"prompt tokens {few['prompt_tokens'] / max(zero['prompt_tokens'], 1):.2f}x"
            )
            print(f"  decision: {evaluation['decision']['reason']}")
            print(
                f"  training job: {result['calls']} calls, {result['tokens']} tokens "
                f"(bound {evaluation['answers_bound']} answers)"
            )

            unseen = keyword_tasks(args.unseen, seed=99, start_id=10_000)
            body = [{"id": tid, "data": {"text": text}} for tid, text, _ in unseen]
            version = client.post("/setup", json={"project": project, "schema": CONFIG}).json()["model_version"]
            before = len(fake.chat_requests)
            results = client.post("/predict", json={"tasks": body, "project": project}).json()["results"]
            calls = len(fake.chat_requests) - before
            tokens = sum(len(r.prompt) // 4 for r in fake.chat_requests[before:])
            right = sum(
                bool(r["result"]) and r["result"][0]["value"]["choices"] == [label]
                for r, (_, _, label) in zip(results, unseen, strict=True)
            )
            print(
                f"unseen tasks ({args.unseen}) after promotion ({base} -> {version}): accuracy "
                f"{right / args.unseen:.3f}, {calls / args.unseen:.2f} calls and ~{tokens / args.unseen:.0f} prompt "
                "tokens per task (counted as the fake provider counts them)"
            )
        rt.close()
    if not (result["promoted"] and few_acc > zero_acc):
        print("FAIL: few-shot is not better than zero-shot on the held-out set")
        return 1
    print("OK: few-shot beats zero-shot on the held-out set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
