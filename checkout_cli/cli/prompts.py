"""Asking an operator for missing input, behind a small interface.

Prompts appear only on a terminal and never with ``--no-input`` or ``CI`` set. The real
prompter uses questionary (imported on first use) and draws on stderr, so stdout stays data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from checkout_cli.config import Settings
from checkout_cli.errors import CheckoutError, UsageError

if TYPE_CHECKING:  # questionary is imported on first use, not at start-up
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from questionary import Choice, Question

Validator = Callable[[str], str | None]  # returns an error message, or None when fine


class Prompter(Protocol):
    def text(
        self, message: str, *, default: str = "", validate: Validator | None = None
    ) -> str: ...

    def choice(
        self, message: str, choices: list[tuple[str, str]], *, default: str | None = None
    ) -> str:
        """Pick one of ``(value, label)`` pairs; the list can be searched by typing."""

    def confirm(self, message: str, *, default: bool = False) -> bool: ...

    def secret(self, message: str) -> str:
        """Hidden input."""

    def search(self, message: str, choices: list[tuple[str, str]]) -> str:
        """Type to find one of ``(value, label)`` pairs (fuzzy completion); returns the value."""


def can_prompt(settings: Settings) -> bool:
    return not settings.no_input and sys.stdin.isatty() and sys.stderr.isatty()


def checker(kind: Any) -> Validator:
    """A prompt validator from a request field's type (``schema.field_type``): the refusal's
    message, or None."""
    from checkout_cli.schema import check

    def validate(value: str) -> str | None:
        try:
            check(kind, value, "value")
        except CheckoutError as exc:
            return exc.message.removeprefix("value: ")
        return None

    return validate


def missing_input(flags: list[str]) -> UsageError:
    return UsageError(
        "missing_input",
        "missing " + ", ".join(flags),
        recovery="give them as flags, or run on a terminal without --no-input to be asked",
    )


class QuestionaryPrompter:
    def __init__(self) -> None:
        import questionary
        from prompt_toolkit.output import create_output

        self._q = questionary
        self._output = create_output(stdout=sys.stderr)

    def text(self, message: str, *, default: str = "", validate: Validator | None = None) -> str:
        # The default is a placeholder, not pre-filled text: Enter takes it, typing replaces
        # it (pre-filled, typing "2" after a default "1" gave "12").
        def check(value: str) -> bool | str:
            problem = validate(value or default) if validate else None
            return problem or True

        placeholder = [("fg:ansibrightblack", default)] if default else None
        answer = self._q.text(
            message, validate=check, output=self._output, placeholder=placeholder
        ).unsafe_ask()
        return answer or default

    def choice(
        self, message: str, choices: list[tuple[str, str]], *, default: str | None = None
    ) -> str:
        options = [self._q.Choice(title=label, value=value) for value, label in choices]
        picked = next((c for c in options if c.value == default), None)
        question = self._q.select(
            message,
            choices=options,
            default=picked,
            use_search_filter=True,
            use_jk_keys=False,
            output=self._output,
        )
        _rank_search_matches(question)
        return question.unsafe_ask()

    def confirm(self, message: str, *, default: bool = False) -> bool:
        return self._q.confirm(message, default=default, output=self._output).unsafe_ask()

    def secret(self, message: str) -> str:
        return self._q.password(message, output=self._output).unsafe_ask()

    def search(self, message: str, choices: list[tuple[str, str]]) -> str:
        by_text = {label.lower(): value for value, label in choices}
        by_text.update({value.lower(): value for value, _ in choices})
        labels = [label for _, label in choices]

        def check(text: str) -> bool | str:
            return text.strip().lower() in by_text or "pick one of the suggestions (Tab)"

        answer = self._q.autocomplete(
            message,
            choices=labels,
            validate=check,
            output=self._output,
            completer=_value_completer(choices),
        ).unsafe_ask()
        return by_text[answer.strip().lower()]


def _value_completer(choices: list[tuple[str, str]]) -> Completer:
    """Fuzzy suggestions of ``(value, label)`` pairs that show the label and insert the value.

    Tab puts only the value (the SKU) in the line, in place of everything typed, not the
    whole suggestion (``SKU  name  price``).
    """
    from prompt_toolkit.completion import Completer, Completion, FuzzyWordCompleter

    value_of = {label: value for value, label in choices}
    fuzzy = FuzzyWordCompleter(list(value_of), WORD=True)

    class ValueCompleter(Completer):
        def get_completions(
            self, document: Document, complete_event: CompleteEvent
        ) -> Iterator[Completion]:
            for found in fuzzy.get_completions(document, complete_event):
                yield Completion(
                    value_of[found.text],
                    start_position=-len(document.text_before_cursor),
                    display=found.display,
                )

    return ValueCompleter()


def match_rank(typed: str, value: str, label: str) -> int | None:
    """How well a typed filter matches a ``(value, label)`` choice: 0 is best, None is no match.

    The value itself (``nl`` for ``NL``), then the label's name without the value (``germany``
    for ``DE  Germany``), then a word starting with it, then any part of the label. A plain
    substring filter in list order made ``NL`` pick Finland and ``DE`` Bangladesh.
    """
    typed = typed.strip().casefold()
    text = label.casefold()
    name = text.removeprefix(value.casefold()).strip()
    if not typed or typed not in text:
        return None
    if typed == value.casefold():
        return 0
    if typed in (text, name):
        return 1
    if any(word.startswith(typed) for word in text.replace(",", " ").split()):
        return 2
    return 3


def _rank_search_matches(question: Question) -> None:
    """Make a questionary select's type-to-filter list best match first (see ``match_rank``),
    and a filter that matches nothing show so, with Enter doing nothing.

    questionary keeps matches in list order and takes the first on Enter; with no match it
    shows the whole list again, and Enter took its first entry (Afghanistan for a mistyped
    country). Its control is swapped for one that orders them, for this prompt only.
    """
    from prompt_toolkit.filters import Condition
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
    from prompt_toolkit.keys import Keys
    from questionary import Choice
    from questionary.prompts.common import InquirerControl

    class RankedControl(InquirerControl):
        @property
        def filtered_choices(self) -> list[Choice]:
            matches = super().filtered_choices
            if not self.search_filter:
                return matches
            if not self.found_in_search:  # a line that says so, in place of every choice
                nothing = f"nothing matches {self.search_filter!r}"
                return [Choice(title=nothing, disabled="Backspace to change the filter")]
            typed = self.search_filter

            def rank(choice: Choice) -> int:
                found = match_rank(typed, str(choice.value), str(choice.title))
                return 4 if found is None else found

            return sorted(matches, key=rank)  # stable: list order within a rank

        def matches_nothing(self) -> bool:
            """Worked out now, as questionary filters: found_in_search is set only when the
            list is drawn, and keys typed fast (a filter, then Enter) come before that."""
            typed = (self.search_filter or "").lower()
            return bool(typed) and not any(typed in str(c.title).lower() for c in self.choices)

    controls: list[RankedControl] = []
    for window in question.application.layout.find_all_windows():
        if isinstance(window.content, InquirerControl):
            window.content.__class__ = RankedControl
            controls.append(window.content)  # type: ignore[arg-type]  # its class just changed

    no_match = Condition(lambda: any(c.matches_nothing() for c in controls))
    held = KeyBindings()

    @held.add(Keys.ControlM, eager=True, filter=no_match)
    def _enter_without_a_match(event: object) -> None:
        """Nothing to take: the operator fixes the filter (the last binding added wins)."""

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings or KeyBindings(), held])


def prompter() -> Prompter:
    return QuestionaryPrompter()
