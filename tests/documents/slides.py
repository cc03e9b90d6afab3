"""Office files for the document tests and benchmark, made with python-pptx."""

from __future__ import annotations

from pathlib import Path

from pptx import Presentation
from pptx.util import Inches, Pt


def make_presentation(path: Path, slides: int, title: str = "Урок") -> Path:
    """A presentation of `slides` slides, each with a title and a few bullet lines."""
    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for number in range(1, slides + 1):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"{title}: слайд {number}"
        body = slide.placeholders[1].text_frame
        body.text = f"Тема {number}"
        for line in ("Определения", "Примеры", "Задание на дом"):
            paragraph = body.add_paragraph()
            paragraph.text = line
            paragraph.level = 1
        note = slide.shapes.add_textbox(Inches(0.5), Inches(6.5), Inches(9), Inches(0.5))
        note.text_frame.text = f"{number} / {slides}"
        note.text_frame.paragraphs[0].runs[0].font.size = Pt(12)
    deck.save(str(path))
    return path
