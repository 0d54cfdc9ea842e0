#!/usr/bin/env bash
# Render a jade report in headless Chromium and check that the page really renders:
#   scripts/screenshot.sh REPORT.html [OUT.png] [PNG_STATS]
# 1. --dump-dom of a copy of the page with a small script appended that records, after the
#    load event, how many <img> elements there are and how many failed to decode
#    (complete && naturalWidth > 0); every image must have loaded, and the page must have at
#    least one. The copy sits next to the report so nothing about the page changes.
# 2. --screenshot of the page itself (1400 x 2400), which must be a valid PNG that is not
#    blank: PNG_STATS (a command printing "width height ink_fraction colours" of a PNG, e.g.
#    "build/test_plot --png-stats") must report ink on > 2% of the pixels and > 50 colours.
# Exit 0: rendered; 1: a check failed; 77: Chromium is not installed (skipped, with a note;
# scripts/setup.sh installs it with JADE_WITH_CHROMIUM=1).
set -u
html=${1:?usage: screenshot.sh REPORT.html [OUT.png] [PNG_STATS]}
out=${2:-${html%.html}.png}
stats=${3:-}
chrome=""
for c in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$c" >/dev/null 2>&1; then chrome=$c; break; fi
done
if [ -z "$chrome" ]; then
  echo "note: Chromium not installed, screenshot check skipped (apt-get install -y chromium, or JADE_WITH_CHROMIUM=1 scripts/setup.sh)"
  exit 77
fi
[ -f "$html" ] || { echo "screenshot: $html: no such file"; exit 1; }
abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
profile=$(mktemp -d)
probe="${abs%.html}.probe.$$.html"
trap 'rm -rf "$profile" "$probe"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-extensions --hide-scrollbars
       --user-data-dir="$profile")

# 1. images: a probe copy with a checker script, its DOM dumped after load
sed 's#</body>#<script>window.addEventListener("load",function(){var n=0,bad=0;for(var i=0;i<document.images.length;i++){var im=document.images[i];n++;if(!im.complete||im.naturalWidth===0)bad++;}document.body.setAttribute("data-jade-images",n+" "+bad);});</script></body>#' \
  "$abs" > "$probe"
dom=$(timeout 120 "$chrome" "${flags[@]}" --virtual-time-budget=10000 --dump-dom "file://$probe" 2>/dev/null)
counts=$(printf '%s' "$dom" | grep -o 'data-jade-images="[0-9]* [0-9]*"' | head -1 | tr -dc '0-9 ')
if [ -z "$counts" ]; then
  echo "screenshot: the page's load event never ran (no image count in the dumped DOM)"
  exit 1
fi
read -r n_img n_bad <<< "$counts"
echo "screenshot: $n_img images, $n_bad failed to load"
if [ "$n_img" -lt 1 ] || [ "$n_bad" -ne 0 ]; then
  echo "screenshot: FAILED: images missing or broken"
  exit 1
fi

# 2. the screenshot
rm -f "$out"
timeout 120 "$chrome" "${flags[@]}" --screenshot="$out" --window-size=1400,2400 "file://$abs" >/dev/null 2>&1
if [ ! -s "$out" ]; then
  echo "screenshot: FAILED: Chromium wrote no screenshot"
  exit 1
fi
if [ -n "$stats" ]; then
  read -r -a statcmd <<< "$stats"
  read -r w h ink colours <<< "$("${statcmd[@]}" "$out")"
  echo "screenshot: $out ${w}x${h}, ink on $(awk -v f="$ink" 'BEGIN{printf "%.1f", 100*f}')% of pixels, $colours colours"
  if [ "${w:-0}" -ne 1400 ] || [ "${h:-0}" -ne 2400 ] || ! awk -v f="$ink" -v c="$colours" 'BEGIN{exit !(f > 0.02 && c > 50)}'; then
    echo "screenshot: FAILED: blank or malformed screenshot"
    exit 1
  fi
else
  echo "screenshot: $out ($(stat -c %s "$out") bytes)"
fi
exit 0
