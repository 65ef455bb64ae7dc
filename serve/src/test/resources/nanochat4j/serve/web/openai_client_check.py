# Runs the official OpenAI Python client against a nanochat4j server (OpenAiClientTest, when -Dopenai.python names a
# Python with the openai package). Usage: python openai_client_check.py http://127.0.0.1:PORT/ MODEL_ID API_KEY
import sys
import openai

base, model, key = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "v1", api_key=key, max_retries=0)
msgs = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 2+2?"}]
assert [m.id for m in client.models.list().data] == [model]
whole = client.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0.7, seed=7)
assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant", whole
assert whole.usage.completion_tokens <= 16 and whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
text, usage = "", None
for chunk in client.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0.7, seed=7,
                                            stream=True, stream_options={"include_usage": True}):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    if chunk.usage:
        usage = chunk.usage
assert text == whole.choices[0].message.content, (text, whole.choices[0].message.content)
assert usage == whole.usage, (usage, whole.usage)
try:
    client.chat.completions.create(model=model, messages=msgs, temperature=5)
    raise AssertionError("temperature 5 was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "temperature", e.body
try:
    openai.OpenAI(base_url=base + "v1", api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("openai", openai.__version__, "ok:", repr(text))
