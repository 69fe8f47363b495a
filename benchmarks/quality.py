"""Quality on each English task's test split: the ``finetune`` backend next to two simple baselines.

The ``finetune`` backend at LexGLUE's recipe (lr 3e-5, batch 8) runs next to a TF-IDF +
linear SVM and the majority class, all trained on the same examples and scored on the
same test split.

    python -m benchmarks.quality [--max-train 1000] [--epochs 3] [--balanced] [--store FILE]

Trials go through the trial store, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from benchmarks.common import RESULTS, data_dir, write_result

ENGLISH = ("unfair_tos", "overruling", "contract_nli", "scotus")


def tfidf_svm(task, keep: list[int]) -> dict[str, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from legal_hpo_env.backends.metrics import scores

    def text(ex) -> str:
        return ex.text if ex.text_pair is None else f"{ex.text} [SEP] {ex.text_pair}"

    train = [task.train[i] for i in keep]
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    x = vectorizer.fit_transform([text(ex) for ex in train])
    svm = LinearSVC(C=1.0, class_weight="balanced", random_state=0).fit(x, [ex.label for ex in train])
    predictions = svm.predict(vectorizer.transform([text(ex) for ex in task.test])).tolist()
    return scores([ex.label for ex in task.test], predictions)


def majority(task, keep: list[int]) -> dict[str, float]:
    from legal_hpo_env.backends.metrics import scores

    label = Counter(task.train[i].label for i in keep).most_common(1)[0][0]
    return scores([ex.label for ex in task.test], [label] * len(task.test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(ENGLISH))
    parser.add_argument("--max-train", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--store", default=str(RESULTS / "trials.sqlite"))
    parser.add_argument("--balanced", action="store_true", help="also run the recipe with balanced class weights")
    args = parser.parse_args()

    from legal_hpo_env import evaluate
    from legal_hpo_env.space import HyperParams
    from legal_hpo_env.tasks import load_task

    recipes = {"finetune_lexglue_recipe": HyperParams(learning_rate=3e-5, batch_size=8, epochs=args.epochs)}
    if args.balanced:
        recipes["finetune_lexglue_recipe_balanced"] = HyperParams(
            learning_rate=3e-5, batch_size=8, epochs=args.epochs, class_weighting="balanced"
        )
    rows = {}
    for name in args.tasks:
        task = load_task(name, data_dir())
        keep = task.train_subset(args.max_train)
        row = {"metric": task.spec.metric, "sizes": {**task.sizes(), "train_used": len(keep)},
               "data_hash": task.data_hash, "test": {}}
        row["test"]["majority_class"] = majority(task, keep)
        row["test"]["tfidf_linear_svm"] = tfidf_svm(task, keep)
        for label, config in recipes.items():
            result = evaluate(name, config, backend="finetune", seed=0, max_train=args.max_train,
                              max_length=args.max_length, data_dir=data_dir(), store=args.store, progress=True)
            row["test"][label] = {"accuracy": result.test_accuracy, "macro_f1": result.test_macro_f1,
                                  "dev_curve": result.dev_curve, "seconds": result.seconds}
            print(name, label, round(result.test_score, 4), f"{result.seconds:.0f}s", file=sys.stderr)
        rows[name] = row
    write_result(
        "quality",
        {
            "command": "python -m benchmarks.quality " + " ".join(sys.argv[1:]),
            "setup": {"max_train": args.max_train, "max_length": args.max_length, "epochs": args.epochs, "seed": 0,
                      "model": "sentence-transformers/all-MiniLM-L6-v2"},
            "tasks": rows,
        },
    )


if __name__ == "__main__":
    main()
