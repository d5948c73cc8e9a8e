"""The official Python SDK (google-genai) through an image chat, for tests/integration/bench_sdk.rs.

    sdk_chat.py BASE_URL OUT_DIR MODEL SIZE < prompts      (key from GEMINI_API_KEY)

Each line of stdin is a prompt, sent with `chat.send_message` on one `client.chats.create` chat (the SDK keeps and
resends the history itself); each answer's images are written to OUT_DIR/<turn>.jpg the way peel writes them
(a temporary file, then a rename). stdout: one JSON line when the SDK is imported and the chat created, then one
per turn with its wall time (send + save) in milliseconds.
"""

import json
import os
import sys
import time

started = time.perf_counter()

from google import genai  # noqa: E402  (the import is part of what is timed)
from google.genai import types  # noqa: E402


def ms(since):
    return round((time.perf_counter() - since) * 1000.0, 3)


def main():
    base_url, out_dir, model, size = sys.argv[1:5]
    prompts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    client = genai.Client(
        api_key=os.environ["GEMINI_API_KEY"],
        # v1beta, the endpoint peel uses (this SDK's default for the Gemini API is v1, the same call).
        http_options=types.HttpOptions(base_url=base_url, api_version="v1beta", timeout=600_000),
    )
    chat = client.chats.create(
        model=model,
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(image_size=size),
        ),
    )
    os.makedirs(out_dir, exist_ok=True)
    print(json.dumps({"ready_ms": ms(started), "sdk": genai.__version__}), flush=True)

    for turn, prompt in enumerate(prompts, start=1):
        turn_started = time.perf_counter()
        response = chat.send_message(prompt)
        request_ms = ms(turn_started)
        images = [
            part.inline_data.data
            for part in (response.parts or [])
            if part.inline_data is not None and not part.thought
        ]
        paths = []
        for index, data in enumerate(images):
            name = f"{turn}.jpg" if index == 0 else f"{turn}-{index + 1}.jpg"
            path = os.path.join(out_dir, name)
            with open(path + ".part", "wb") as file:
                file.write(data)
            os.replace(path + ".part", path)
            paths.append(path)
        print(
            json.dumps(
                {
                    "turn": turn,
                    "wall_ms": ms(turn_started),
                    "request_ms": request_ms,
                    "images": [{"path": p, "bytes": len(d)} for p, d in zip(paths, images)],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
