"""Write checkout's shell completion scripts into this folder: python completions/generate.py"""

from __future__ import annotations

from pathlib import Path

from typer.completion import get_completion_script

SHELLS = {"bash": "checkout.bash", "zsh": "_checkout", "fish": "checkout.fish"}


def script(shell: str) -> str:
    return get_completion_script(
        prog_name="checkout", complete_var="_CHECKOUT_COMPLETE", shell=shell
    )


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for shell, name in SHELLS.items():
        (here / name).write_text(script(shell))
        print(f"wrote {here / name}")
