"""What the judges see in one image's averaged perturbations: the generation effect of a targeted δ or, untargeted,
whether each judge names the image's class from δ alone, choosing among a few classes as the thesis' judges chose
among 20."""

from __future__ import annotations

import streamlit as st

from engine import domains
from engine.analysis import recognisable as rec
from engine.glossary import help_text


def show(model, judges, y, aimed, deltas: dict, verdicts) -> None:
    """`aimed`: (source, target) of a targeted run, whose judges' `verdicts` are already made; None: untargeted."""
    names = model.class_names
    if aimed is not None:
        st.header("Generation effect")
        st.caption(rec.generation_caption(names[int(aimed[1][0])]))
        st.dataframe(rec.generation_rows(verdicts, names), width="stretch")
        return
    st.header("Recognisability")
    c = st.columns(2)
    default = min(domains.of(model).averaging.get("choices", len(names)), len(names))
    hint = help_text("machine recognisability")
    choices = int(c[0].number_input("Judges choose among", 2, len(names), default, key="anatomy.choices", help=hint))
    seed = int(c[1].number_input("Seed of the other choices", 0, 2**31 - 1, 0, key="anatomy.choices_seed"))
    rows = rec.recognition_rows(judges, y, deltas, model.domain, names, choices if choices < len(names) else None, seed)
    st.caption(
        f"Each judge sees each setting's display-normalised δ alone and names the class with its highest logit among "
        f"{choices} (the image's and {choices - 1} drawn with the seed; chance {1 / choices:.0%})."
    )
    st.dataframe(rows, width="stretch")
