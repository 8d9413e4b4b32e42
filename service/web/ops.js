// The filter-chain builder: a list of blur and contour steps that the user
// orders, tunes and removes with buttons (keyboard friendly), mirrored into
// the `ops=` text that is actually sent. Editing that text by hand wins
// until the builder is touched again.

const SIGMA_MIN = 0.1;
const SIGMA_MAX = 100;

export class OpChain {
  constructor(list, text) {
    this.list = list;      // <ol> of steps
    this.text = text;      // <input> holding the ops string
    this.steps = [{ op: "blur", sigma: 5, on: true }, { op: "contour", on: true }];
    this.render();
  }

  add(op) {
    this.steps.push(op === "blur" ? { op, sigma: 5, on: true } : { op, on: true });
    this.render(this.steps.length - 1);
  }

  // The ops string: enabled steps in order, e.g. "blur:5,contour".
  toString() {
    return this.steps.filter((s) => s.on)
      .map((s) => (s.op === "blur" ? `blur:${s.sigma}` : s.op)).join(",");
  }

  // What to send: the text field as the user left it.
  value() {
    return this.text.value.trim();
  }

  render(focusIndex) {
    this.list.replaceChildren(...this.steps.map((step, i) => this.renderStep(step, i)));
    this.text.value = this.toString();
    if (focusIndex !== undefined) {
      const item = this.list.children[focusIndex];
      if (item) item.querySelector("input, button").focus();
    }
  }

  renderStep(step, i) {
    const li = document.createElement("li");
    li.className = `op ${step.on ? "" : "off"}`;
    li.dataset.op = step.op;
    const id = `op-${i}`;

    const toggle = document.createElement("input");
    toggle.type = "checkbox";
    toggle.id = `${id}-on`;
    toggle.checked = step.on;
    toggle.addEventListener("change", () => { step.on = toggle.checked; this.render(); });
    const name = document.createElement("label");
    name.htmlFor = toggle.id;
    name.className = "op-name";
    name.textContent = step.op === "blur" ? "Blur" : "Contour";
    li.append(toggle, name);

    if (step.op === "blur") {
      const slider = document.createElement("input");
      slider.type = "range";
      slider.min = "0"; slider.max = "1000"; slider.step = "1";
      slider.value = String(sigmaToSlider(step.sigma));
      slider.id = `${id}-slider`;
      slider.setAttribute("aria-label", "Blur sigma (logarithmic)");
      const number = document.createElement("input");
      number.type = "number";
      number.min = String(SIGMA_MIN); number.max = String(SIGMA_MAX); number.step = "0.1";
      number.value = String(step.sigma);
      number.id = `${id}-sigma`;
      number.className = "sigma";
      number.setAttribute("aria-label", "Blur sigma");
      slider.addEventListener("input", () => {
        step.sigma = sliderToSigma(Number(slider.value));
        number.value = String(step.sigma);
        this.text.value = this.toString();
      });
      // Whatever is typed is sent, even out of range: the server's answer
      // says what is wrong, next to each image.
      number.addEventListener("input", () => {
        step.sigma = number.value.trim() === "" ? number.value : Number(number.value);
        if (Number.isFinite(step.sigma)) slider.value = String(sigmaToSlider(step.sigma));
        this.text.value = this.toString();
      });
      const sigmaLabel = document.createElement("span");
      sigmaLabel.className = "hint";
      sigmaLabel.textContent = "σ";
      li.append(slider, sigmaLabel, number);
    }

    const tools = document.createElement("span");
    tools.className = "op-tools";
    tools.append(
      this.button("↑", `Move ${step.op} up`, i === 0, () => this.move(i, -1)),
      this.button("↓", `Move ${step.op} down`, i === this.steps.length - 1, () => this.move(i, 1)),
      this.button("✕", `Remove ${step.op}`, false, () => { this.steps.splice(i, 1); this.render(); }));
    li.append(tools);
    return li;
  }

  button(text, label, disabled, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.title = label;
    b.disabled = disabled;
    b.addEventListener("click", onClick);
    return b;
  }

  move(i, by) {
    const j = i + by;
    [this.steps[i], this.steps[j]] = [this.steps[j], this.steps[i]];
    this.render(j);
  }
}

// The slider is logarithmic over 0.1..100: small sigmas need fine steps.
function sliderToSigma(v) {
  const s = SIGMA_MIN * Math.pow(SIGMA_MAX / SIGMA_MIN, v / 1000);
  return s < 10 ? Math.round(s * 10) / 10 : Math.round(s);
}

function sigmaToSlider(sigma) {
  const s = Math.min(Math.max(sigma, SIGMA_MIN), SIGMA_MAX);
  return Math.round(1000 * Math.log(s / SIGMA_MIN) / Math.log(SIGMA_MAX / SIGMA_MIN));
}
