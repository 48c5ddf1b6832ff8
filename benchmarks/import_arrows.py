"""The import arrows between this project's modules, and what playing a world loads.

    python benchmarks/import_arrows.py            # module -> the project modules it imports
    python benchmarks/import_arrows.py --play     # the project modules loaded by World(...).step

Imports inside functions count too: they are arrows all the same, only taken later.
"""

import argparse
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worldgen", "envs", "models")


def arrows() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                edges[module].update(n for n in names if n.split(".")[0] in PACKAGES and n != module)
    return edges


PLAY = """
import sys
from worldgen.world import World
world = World("platformer")
world.reset(seed=0)
world.step([2])
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] in ("worldgen", "envs", "models"))))
"""

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--play", action="store_true", help="list the modules that playing a world loads")
    args = parser.parse_args()
    if args.play:
        print(subprocess.run([sys.executable, "-c", PLAY], cwd=ROOT, check=True, capture_output=True, text=True).stdout, end="")
    else:
        for module, targets in sorted(arrows().items()):
            if targets:
                print(f"{module} -> {', '.join(sorted(targets))}")
