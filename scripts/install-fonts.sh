#!/usr/bin/env bash
# The label preview draws text with Noto Sans CJK (Latin, Korean, Chinese, Japanese) from Debian's
# fonts-noto-cjk. Installed when missing and we may (root, apt-get present); otherwise we say so and
# the preview falls back to DejaVu Sans, which has no CJK glyphs.
set -euo pipefail
if [ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null; }
else
  echo "install-fonts: fonts-noto-cjk is missing; label previews will draw CJK text as boxes" \
       "(run: sudo apt-get install fonts-noto-cjk)" >&2
fi
