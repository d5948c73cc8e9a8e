"""The official SDK (google-genai, pinned in requirements.txt) against peel's fake server: if the SDK's own client
accepts what the fake answers, and the fake accepts what the SDK sends, the fake speaks the APIs as the SDK's types
define them. Run by tests/integration/sdk_interop.rs with FAKE_URL and GEMINI_API_KEY set; prints one JSON report.
"""

import io
import json
import os
import sys
import time

from google import genai
from google.genai import types
from google.genai import version

MODEL = "gemini-3-pro-image"
IMAGE = {"type": "image", "aspect_ratio": "16:9"}

# The SDK's defaults otherwise: API version v1, its own retries.
client = genai.Client(
    api_key=os.environ["GEMINI_API_KEY"],
    http_options=types.HttpOptions(base_url=os.environ["FAKE_URL"]),
)
report = {"sdk": version.__version__}
started = time.monotonic()


def check(condition, what):
    if not condition:
        print(f"CHECK FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# Interactions: create, then continue with previous_interaction_id.
first = client.interactions.create(
    model=MODEL,
    input="a red fox at dawn",
    response_format=IMAGE,
    generation_config={"thinking_summaries": "auto"},
)
check(first.status == "completed", f"first status {first.status}")
check(first.output_image is not None and first.output_image.data, "first has an image")
thoughts = [s for s in first.steps if s.type == "thought"]
check(thoughts and thoughts[0].signature and thoughts[0].summary, "a thought with summary and signature")
second = client.interactions.create(
    model=MODEL, input="make it night", previous_interaction_id=first.id, response_format=IMAGE
)
check(second.output_image is not None, "second has an image")
report["chain"] = [first.id, second.id]

# Streaming, continuing the chain.
stream = client.interactions.create(
    model=MODEL,
    input=[{"type": "text", "text": "add falling snow"}],
    previous_interaction_id=second.id,
    response_format=IMAGE,
    stream=True,
)
events = list(stream)
report["stream_events"] = [e.event_type for e in events]
check(events[-1].event_type == "interaction.completed", "the stream completes")
check(events[-1].interaction.status == "completed", "completed status")
images = [e for e in events if e.event_type == "step.delta" and e.delta.type == "image"]
check(len(images) == 1 and images[0].delta.data, "one image delta")
signatures = [e for e in events if e.event_type == "step.delta" and e.delta.type == "thought_signature"]
check(signatures and signatures[0].delta.signature, "a signature delta")
third_id = events[-1].interaction.id

# Get, with and without the input.
got = client.interactions.get(id=second.id)
check([s.type for s in got.steps] == [s.type for s in second.steps], "get returns the model's steps")
with_input = client.interactions.get(id=third_id, include_input=True)
check(with_input.steps[0].type == "user_input", "include_input adds the user's step")
report["get_steps"] = [s.type for s in with_input.steps]

# An id the server does not have: the SDK's 404 error.
try:
    client.interactions.create(model=MODEL, input="x", previous_interaction_id="v1_unknown", response_format=IMAGE)
    check(False, "an unknown previous_interaction_id is refused")
except Exception as error:  # the SDK's NotFoundError
    report["unknown_previous"] = [type(error).__name__, getattr(error, "status_code", None)]

client.interactions.delete(id=first.id)


def wait(job):
    states = [job.state.value]
    while not job.done:
        time.sleep(0.05)
        job = client.batches.get(name=job.name)
        if states[-1] != job.state.value:
            states.append(job.state.value)
    return job, states


request = lambda prompt, key: {
    "contents": [{"role": "user", "parts": [{"text": prompt}]}],
    "config": {"response_modalities": ["TEXT", "IMAGE"], "image_config": {"aspect_ratio": "1:1"}},
    "metadata": {"key": key},
}

# Batch, inline.
job = client.batches.create(
    model=MODEL,
    src=[request("a cat", "cat"), request("a dog", "dog")],
    config={"display_name": "sdk-inline"},
)
job, states = wait(job)
report["inline_states"] = states
check(job.state.value == "JOB_STATE_SUCCEEDED", f"inline job {job.state}")
inline = []
for item in job.dest.inlined_responses:
    part = item.response.candidates[0].content.parts[0]
    check(part.inline_data and part.inline_data.data and part.thought_signature, "an image with its signature")
    inline.append(item.metadata["key"])
report["inline_keys"] = inline

# Batch through an uploaded JSONL file; the responses file downloaded.
lines = "".join(
    json.dumps({"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}}) + "\n"
    for key, prompt in [("owl", "an owl"), ("hare", "a hare")]
).encode()
uploaded = client.files.upload(
    file=io.BytesIO(lines), config={"mime_type": "application/jsonl", "display_name": "sdk-requests"}
)
check(uploaded.name.startswith("files/") and uploaded.size_bytes == len(lines), f"uploaded {uploaded}")
job = client.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "sdk-file"})
job, states = wait(job)
report["file_states"] = states
check(job.dest.file_name, "a responses file")
results = client.files.download(file=job.dest.file_name)
keys = []
for line in results.decode().splitlines():
    result = json.loads(line)
    check(result["response"]["candidates"][0]["content"]["parts"][0]["inlineData"]["data"], "a result image")
    keys.append(result["key"])
report["file_keys"] = keys

# Cancel.
job = client.batches.create(model=MODEL, src=[request("a slow one", "slow")], config={"display_name": "sdk-cancel"})
client.batches.cancel(name=job.name)
report["cancelled"] = client.batches.get(name=job.name).state.value
report["seconds"] = round(time.monotonic() - started, 2)
print(json.dumps(report))
