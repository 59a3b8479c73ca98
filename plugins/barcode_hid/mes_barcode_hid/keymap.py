"""US keyboard layout for scanners in keyboard mode: Linux key codes to characters, with modifiers.

Key codes are the kernel's (``linux/input-event-codes.h``), a stable ABI, spelled out here so that
the decoding runs (and is tested) without the ``evdev`` package or a device.

Besides Shift (either key, tracked by press/release), the translator understands the two ways a
scanner in keyboard mode sends control characters such as the GS1 group separator ``"\\x1d"``:
Ctrl+``]`` (and Ctrl+letter/``[\\^_``), and Alt held while decimal digits are typed on the keypad
(``Alt+0,2,9`` → chr(29)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KEY_ESC = 1
KEY_BACKSPACE = 14
KEY_TAB = 15
KEY_ENTER = 28
KEY_LEFTCTRL = 29
KEY_LEFTSHIFT = 42
KEY_RIGHTSHIFT = 54
KEY_LEFTALT = 56
KEY_CAPSLOCK = 58
KEY_NUMLOCK = 69
KEY_KPENTER = 96
KEY_RIGHTCTRL = 97
KEY_RIGHTALT = 100

SHIFT_KEYS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
CTRL_KEYS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL})
ALT_KEYS = frozenset({KEY_LEFTALT, KEY_RIGHTALT})
ENTER_KEYS = frozenset({KEY_ENTER, KEY_KPENTER})

# key code -> (unshifted, shifted) on a US layout
US_KEYMAP: dict[int, tuple[str, str]] = {
    2: ("1", "!"),
    3: ("2", "@"),
    4: ("3", "#"),
    5: ("4", "$"),
    6: ("5", "%"),
    7: ("6", "^"),
    8: ("7", "&"),
    9: ("8", "*"),
    10: ("9", "("),
    11: ("0", ")"),
    12: ("-", "_"),
    13: ("=", "+"),
    16: ("q", "Q"),
    17: ("w", "W"),
    18: ("e", "E"),
    19: ("r", "R"),
    20: ("t", "T"),
    21: ("y", "Y"),
    22: ("u", "U"),
    23: ("i", "I"),
    24: ("o", "O"),
    25: ("p", "P"),
    26: ("[", "{"),
    27: ("]", "}"),
    30: ("a", "A"),
    31: ("s", "S"),
    32: ("d", "D"),
    33: ("f", "F"),
    34: ("g", "G"),
    35: ("h", "H"),
    36: ("j", "J"),
    37: ("k", "K"),
    38: ("l", "L"),
    39: (";", ":"),
    40: ("'", '"'),
    41: ("`", "~"),
    43: ("\\", "|"),
    44: ("z", "Z"),
    45: ("x", "X"),
    46: ("c", "C"),
    47: ("v", "V"),
    48: ("b", "B"),
    49: ("n", "N"),
    50: ("m", "M"),
    51: (",", "<"),
    52: (".", ">"),
    53: ("/", "?"),
    57: (" ", " "),
    55: ("*", "*"),  # keypad
    74: ("-", "-"),
    78: ("+", "+"),
    83: (".", "."),
    98: ("/", "/"),
}

# keypad digits, which scanners use both as digits and for Alt+number character entry
KEYPAD_DIGITS: dict[int, str] = {
    82: "0",
    79: "1",
    80: "2",
    81: "3",
    75: "4",
    76: "5",
    77: "6",
    71: "7",
    72: "8",
    73: "9",
}

KEY_NAMES: dict[str, frozenset[int]] = {
    "enter": ENTER_KEYS,
    "tab": frozenset({KEY_TAB}),
}


def control_character(char: str) -> str | None:
    """The control character Ctrl+``char`` types (Ctrl+``]`` → GS ``"\\x1d"``), or None."""
    upper = char.upper()
    if len(upper) == 1 and "@" <= upper <= "_":
        return chr(ord(upper) - 0x40)
    return None


TERMINATOR = "\n"
"""What :meth:`KeyTranslator.key` returns for a terminator key (Enter by default)."""


@dataclass
class KeyTranslator:
    """Turns key presses and releases into characters, keeping modifier state between events.

    :param terminator_keys: key codes that end a code (Enter and keypad Enter by default);
        :meth:`key` returns :data:`TERMINATOR` for them.
    """

    terminator_keys: frozenset[int] = ENTER_KEYS
    shifts_held: set[int] = field(default_factory=set)
    ctrls_held: set[int] = field(default_factory=set)
    alts_held: set[int] = field(default_factory=set)
    caps_lock: bool = False
    alt_digits: str = ""
    unmapped: int = 0

    @property
    def shift(self) -> bool:
        return bool(self.shifts_held)

    def reset(self) -> None:
        """Forget every held modifier and pending Alt code (after lost events)."""
        self.shifts_held.clear()
        self.ctrls_held.clear()
        self.alts_held.clear()
        self.alt_digits = ""

    def key(self, code: int, value: int) -> str | None:
        """Feed one key event (``value`` 1 press, 0 release, 2 auto-repeat).

        :return: the character typed (or :data:`TERMINATOR`), or None when the event types none.
            Auto-repeats type nothing: a scanner never holds a key on purpose, so a repeat means a
            stalled key and would only duplicate a character inside a code.
        """
        if value == 2:
            return None
        pressed = value == 1
        for keys, held in (
            (SHIFT_KEYS, self.shifts_held),
            (CTRL_KEYS, self.ctrls_held),
            (ALT_KEYS, self.alts_held),
        ):
            if code in keys:
                if pressed:
                    held.add(code)
                    return None
                held.discard(code)
                if keys is ALT_KEYS and not self.alts_held and self.alt_digits:
                    typed, self.alt_digits = int(self.alt_digits), ""
                    return chr(typed % 256)
                return None
        if not pressed:
            return None
        if code == KEY_CAPSLOCK:
            self.caps_lock = not self.caps_lock
            return None
        if code in self.terminator_keys:
            return TERMINATOR
        if code in KEYPAD_DIGITS:
            digit = KEYPAD_DIGITS[code]
            if self.alts_held:
                self.alt_digits += digit
                return None
            return digit
        pair = US_KEYMAP.get(code)
        if pair is None:
            self.unmapped += 1
            return None
        plain, shifted = pair
        shift = self.shift
        if self.caps_lock and plain.isalpha():
            shift = not shift
        char = shifted if shift else plain
        if self.ctrls_held:
            return control_character(char)
        return char
