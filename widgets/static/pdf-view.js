// One PDF on one canvas, page by page, with the vendored pdf.js: the documents page's
// viewer and the document a teacher presents in a call.
import * as pdfjs from "/documents/static/vendor/pdf.min.mjs";

pdfjs.GlobalWorkerOptions.workerSrc = "/documents/static/vendor/pdf.worker.min.mjs";

export class PdfView {
  constructor(stage) {
    this.stage = stage;
    this.pdf = null;
    this.page = 0;
    this.wanted = 0;
  }

  get pages() {
    return this.pdf ? this.pdf.numPages : 0;
  }

  async open(url) {
    this.close();
    // One whole download, not pdf.js's many range requests: Synapse serves media only
    // whole, so every range would stream the file from its start again.
    this.pdf = await pdfjs.getDocument({ url, isEvalSupported: false, disableRange: true }).promise;
    return this.pdf.numPages;
  }

  // Draw a page to fit the stage's width; a later call wins over one still drawing.
  async show(number) {
    if (!this.pdf) return false;
    const target = Math.max(1, Math.min(number, this.pdf.numPages));
    this.wanted = target;
    const pdf = this.pdf;
    const page = await pdf.getPage(target);
    const ratio = window.devicePixelRatio || 1;
    const width = Math.min(this.stage.clientWidth || 800, 1200);
    const scale = width / page.getViewport({ scale: 1 }).width;
    const viewport = page.getViewport({ scale: scale * ratio });
    const canvas = document.createElement("canvas");
    canvas.width = Math.floor(viewport.width);
    canvas.height = Math.floor(viewport.height);
    canvas.style.width = `${Math.floor(viewport.width / ratio)}px`;
    await page.render({ canvas, canvasContext: canvas.getContext("2d"), viewport }).promise;
    if (pdf !== this.pdf || this.wanted !== target) return false;
    this.stage.replaceChildren(canvas);
    this.page = target;
    return true;
  }

  close() {
    if (this.pdf) this.pdf.destroy();
    this.pdf = null;
    this.page = 0;
    this.stage.replaceChildren();
  }
}
