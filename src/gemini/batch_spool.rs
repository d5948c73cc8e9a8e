//! A batch job read without holding its results in memory. A finished job whose requests went inline answers
//! `GET batches/{id}` with every result inline in the operation (`metadata.output.inlinedResponses
//! .inlinedResponses[]`, SDK google-genai 3.6.1 `batches.py` `_BatchJobDestination_from_mldev`): 50 2K images with
//! their signatures are a 200 MB answer. So the answer is written to an anonymous temporary file as it arrives, the
//! job is read from it with the results skipped, and the results are then read back one at a time.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom, Write};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::Progress;
use super::batch::{BatchJob, BatchResult, result_of};
use super::client::Client;
use super::error::{ApiError, GeminiError};

/// A job as `get` describes it, its inline results left in the spool file.
pub struct SpooledJob {
    pub job: BatchJob,
    /// How many inline results the answer holds.
    pub inline_results: usize,
    file: File,
}

/// The keys on the way to the inline results: the operation's `metadata` (or `response`), its `output`, and the
/// two nested `inlinedResponses`.
const PATH_KEYS: &[&str] = &["metadata", "response", "output", "inlinedResponses"];

impl Client {
    /// The job's state now, read as [`Client::get_batch`] reads it, except that its inline results stay on disk:
    /// [`SpooledJob::inline`] reads them one at a time.
    pub async fn get_batch_spooled(&self, name: &str) -> Result<SpooledJob, GeminiError> {
        self.gemini_only("the Batch API")?;
        let url = self.batch_url(name, "");
        let quiet = |_: Progress<'_>| {};
        let file = self
            .retry_policy()
            .run(&quiet, || async {
                let mut file = tempfile::tempfile().map_err(|e| spool_error(&e))?;
                let response = self
                    .send(Method::GET, &url, &HeaderMap::new(), None, &quiet)
                    .await?;
                let mut chunks = response.bytes_stream();
                while let Some(chunk) = self.next_chunk(&mut chunks).await? {
                    file.write_all(&chunk).map_err(|e| spool_error(&e))?;
                }
                Ok(file)
            })
            .await?;
        let mut spooled = SpooledJob {
            job: BatchJob::default(),
            inline_results: 0,
            file,
        };
        let mut count = 0;
        let skeleton = spooled.walk(&mut |_| {
            count += 1;
            true
        })?;
        if let Some(error) = skeleton
            .get("error")
            .filter(|_| skeleton.get("name").is_none())
        {
            // An error payload in a 200, as some servers send.
            return Err(GeminiError::Api(ApiError::from_status(200, error)));
        }
        spooled.job = BatchJob::from_value(&skeleton)?;
        spooled.inline_results = count;
        Ok(spooled)
    }
}

fn spool_error(error: &std::io::Error) -> GeminiError {
    GeminiError::Malformed(format!(
        "the batch's answer could not be kept in a temporary file: {error}"
    ))
}

impl SpooledJob {
    /// Hands each inline result to `each`, in order, one at a time (it returns false to stop). A result that is
    /// not one is handed on as an error for that result only.
    pub fn inline(
        &mut self,
        each: &mut dyn FnMut(Result<BatchResult, GeminiError>) -> bool,
    ) -> Result<(), GeminiError> {
        let mut index = 0;
        self.walk(&mut |value| {
            index += 1;
            each(result_of(value, format!("#{index}")))
        })?;
        Ok(())
    }

    /// Reads the spooled answer, handing each inline result to `each` and returning the rest of the answer.
    fn walk(&mut self, each: &mut dyn FnMut(Value) -> bool) -> Result<Value, GeminiError> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| spool_error(&e))?;
        let mut sink = Sink {
            each,
            stopped: false,
        };
        let mut deserializer = serde_json::Deserializer::from_reader(BufReader::with_capacity(
            256 * 1024,
            &mut self.file,
        ));
        let value = Node {
            results: false,
            sink: &mut sink,
        }
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
        match value {
            Ok(value) => Ok(value),
            Err(_) if sink.stopped => Ok(Value::Null),
            Err(e) => Err(GeminiError::Malformed(format!("the batch's answer: {e}"))),
        }
    }
}

struct Sink<'f> {
    each: &'f mut dyn FnMut(Value) -> bool,
    stopped: bool,
}

/// One JSON value of the answer: kept as it is, except on the way to the results, where it is walked, and the
/// results list itself, whose items go to the sink one by one and are not kept.
struct Node<'s, 'f> {
    results: bool,
    sink: &'s mut Sink<'f>,
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a batch operation")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let sink = self.sink;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if PATH_KEYS.contains(&key.as_str()) {
                map.next_value_seed(Node {
                    results: key == "inlinedResponses",
                    sink: &mut *sink,
                })?
            } else {
                map.next_value::<Value>()?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if !self.results {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                out.push(item);
            }
            return Ok(Value::Array(out));
        }
        while let Some(item) = seq.next_element::<Value>()? {
            if !(self.sink.each)(item) {
                self.sink.stopped = true;
                return Err(de::Error::custom("stopped"));
            }
        }
        // The list is left empty in what is kept: its items went to the sink.
        Ok(Value::Array(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::batch::BatchOutput;
    use serde_json::json;

    fn spooled(answer: &Value) -> SpooledJob {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(answer.to_string().as_bytes()).unwrap();
        SpooledJob {
            job: BatchJob::default(),
            inline_results: 0,
            file,
        }
    }

    #[test]
    fn inline_results_come_one_at_a_time_and_the_rest_is_the_job() {
        let answer = json!({
            "name": "batches/abc",
            "metadata": {
                "state": "BATCH_STATE_SUCCEEDED",
                "batchStats": {"requestCount": "3"},
                "output": {"inlinedResponses": {"inlinedResponses": [
                    {"response": {"candidates": []}, "metadata": {"key": "a"}},
                    {"error": {"code": 400, "message": "bad"}, "metadata": {"key": "b"}},
                    {"response": {"candidates": []}, "metadata": {"key": "c"}}
                ]}}
            },
            "done": true
        });
        let mut job = spooled(&answer);
        let mut count = 0;
        let skeleton = job
            .walk(&mut |_| {
                count += 1;
                true
            })
            .unwrap();
        assert_eq!(count, 3);
        let parsed = BatchJob::from_value(&skeleton).unwrap();
        assert_eq!(parsed.name, "batches/abc");
        assert_eq!(parsed.stats.request_count, Some(3));
        assert_eq!(parsed.output, Some(BatchOutput::Inline(Vec::new())));

        let mut keys = Vec::new();
        job.inline(&mut |result| {
            let result = result.unwrap();
            keys.push((result.key, result.result.is_ok()));
            true
        })
        .unwrap();
        assert_eq!(
            keys,
            [("a".into(), true), ("b".into(), false), ("c".into(), true)]
        );

        // Stopping early is not an error.
        let mut seen = 0;
        job.inline(&mut |_| {
            seen += 1;
            false
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn a_job_without_inline_results_reads_whole() {
        let answer = json!({"name": "batches/f", "metadata": {
            "state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/out"}}});
        let mut job = spooled(&answer);
        let skeleton = job.walk(&mut |_| true).unwrap();
        assert_eq!(skeleton, answer);
        let mut cut = tempfile::tempfile().unwrap();
        cut.write_all(br#"{"name": "batches/x", "metadata": {"state": "#)
            .unwrap();
        let mut broken = SpooledJob {
            job: BatchJob::default(),
            inline_results: 0,
            file: cut,
        };
        assert!(broken.walk(&mut |_| true).is_err());
    }
}
