#!/bin/sh
# notes — a tiny berth agent for the `base` (BusyBox) template.
#
# It reads its prompt from stdin (also in $BERTH_PROMPT) and its thread's
# history from $BERTH_THREAD_FILE (JSONL, one event per line), then appends a
# dated note to /workspace/NOTES.md and says what it remembers.
#
# Register it with the script as the command: ["/bin/sh", "-c", "<this file>"].
set -eu

prompt=$(cat)
notes=/workspace/NOTES.md
history=${BERTH_THREAD_FILE:-}

# Earlier prompts of this thread, oldest first (the "text" of prompt events).
earlier=""
if [ -n "$history" ] && [ -f "$history" ]; then
	earlier=$(sed -n 's/.*"type":"prompt","text":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$history")
fi
count=0
if [ -n "$earlier" ]; then
	count=$(printf '%s\n' "$earlier" | wc -l | tr -d ' ')
fi

[ -f "$notes" ] || printf '# Notes\n\n' >"$notes"
printf -- '- %s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${BERTH_THREAD_ID:-no-thread}" "$prompt" >>"$notes"

echo "noted: $prompt"
echo "earlier prompts in this thread: $count"
if [ -n "$earlier" ]; then
	printf '%s\n' "$earlier" | sed 's/^/  - /'
fi
