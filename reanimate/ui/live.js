// The Live tab's camera loop: the js_on_load of a gr.HTML (`element`: its root, `props`:
// `value` the session's token, `route` where frames go, `max_side` the longest side of a
// frame sent, `window` the frames the figures are taken over).
//
// One frame at a time: the camera's picture is drawn, sent as a JPEG, and the next is
// drawn only once the animated frame has come back and is shown, so frames the camera
// makes meanwhile are dropped and the latency stays one round trip. The round trip is
// measured here, with performance.now(), from drawing the camera's frame to showing the
// animated one; the server's share comes in its X-Reanimate-Server-Ms header.
const video = element.querySelector(".live-webcam");
const output = element.querySelector(".live-animated");
const line = element.querySelector(".live-figures");
const start = element.querySelector(".live-start");
const stop = element.querySelector(".live-stop");
const canvas = document.createElement("canvas");
const trips = [];
const serverTimes = [];
const shownAt = [];
let stream = null;
let running = false;

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function keep(values, value) {
  values.push(value);
  if (values.length > props.window) values.shift();
}

function figures(face) {
  const seconds = (shownAt[shownAt.length - 1] - shownAt[0]) / 1000;
  const rate = shownAt.length > 1 && seconds > 0 ? (shownAt.length - 1) / seconds : 0;
  let text = `${rate.toFixed(1)} frames/s, round trip ${median(trips).toFixed(0)} ms ` +
    `(server ${median(serverTimes).toFixed(0)} ms; medians of ${trips.length})`;
  if (face === "0") text += "; no face in the camera's frame";
  line.textContent = text;
}

function grab() {
  const scale = Math.min(1, props.max_side / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((done) => canvas.toBlob(done, "image/jpeg", 0.85));
}

// One round trip; false when the loop should stop (the page's session is gone).
async function step() {
  const drawn = performance.now();
  const frame = await grab();
  const answer = await fetch(props.route, {
    method: "POST",
    body: frame,
    headers: { "Content-Type": "image/jpeg", "X-Reanimate-Token": props.value },
    cache: "no-store",
  });
  if (!answer.ok) {
    line.textContent = await answer.text();
    await sleep(1000);
    return answer.status !== 403;
  }
  const animated = URL.createObjectURL(await answer.blob());
  const previous = output.src;
  output.src = animated;
  await output.decode();
  if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
  const now = performance.now();
  keep(trips, now - drawn);
  keep(serverTimes, Number(answer.headers.get("X-Reanimate-Server-Ms")));
  keep(shownAt, now);
  output.dataset.frames = String(Number(output.dataset.frames || 0) + 1);
  figures(answer.headers.get("X-Reanimate-Face"));
  return true;
}

function halt() {
  running = false;
  if (stream) stream.getTracks().forEach((track) => track.stop());
  stream = null;
  video.srcObject = null;
  start.disabled = false;
  stop.disabled = true;
}

async function loop() {
  while (running) {
    if (!props.value) {
      line.textContent = "waiting for the server";
      await sleep(300);
    } else if (video.readyState < 2) {
      await sleep(30);
    } else {
      try {
        if (!(await step())) halt();
      } catch (error) {
        line.textContent = `error: no answer from the server (${error.message}); retrying`;
        await sleep(1000);
      }
    }
  }
}

start.addEventListener("click", async () => {
  if (running) return;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) {
    line.textContent = `error: no camera (${error.message}); allow this page to use it`;
    return;
  }
  video.srcObject = stream;
  await video.play();
  running = true;
  start.disabled = true;
  stop.disabled = false;
  trips.length = serverTimes.length = shownAt.length = 0;
  loop();
});

stop.addEventListener("click", halt);
stop.disabled = true;
