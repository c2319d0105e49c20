"""Report texts in the styles of dermatology vision-language models, with the expected reading.

``expected`` is the cohort label a careful reader takes as the final
diagnosis, or None where a careful reader would not commit (no diagnosis,
two alternatives, a diagnosis outside the label set). Written for these
tests: varied phrasing, SkinGPT-R1-style sections, Skin-R1-style
``<think>/<answer>`` tags, JSON, hedges, negations, abbreviations, typos.
"""

from __future__ import annotations

LABELS = ["nevus", "melanoma", "bcc", "scc", "seborrheic_keratosis", "actinic_keratosis"]

CORPUS: list[tuple[str, str | None]] = [
    # --- SkinGPT-R1 style: findings, differential reasoning, final diagnosis
    (
        """**Visual findings:** An asymmetric, irregularly pigmented macule with blue-white veil and
irregular borders, about 9 mm across.
**Differential reasoning:** A dysplastic nevus may look similar, but the blue-white structures and the
asymmetry favour a malignant melanocytic lesion. Seborrheic keratosis is unlikely (no milia-like cysts).
**Final diagnosis:** Melanoma.""",
        "melanoma",
    ),
    (
        """Visual findings: pearly papule with arborizing telangiectasia and a central ulcer.
Differential reasoning: squamous cell carcinoma and amelanotic melanoma were considered; the
pearly border and telangiectasia point to a basal cell process.
Final diagnosis: Basal cell carcinoma (nodular).""",
        "bcc",
    ),
    (
        """### Visual findings
Stuck-on, waxy, verrucous plaque with comedo-like openings.
### Differential reasoning
Pigmented BCC and melanoma enter the differential for a dark plaque, but the stuck-on look is classic.
### Final diagnosis
Seborrheic keratosis""",
        "seborrheic_keratosis",
    ),
    (
        """1. Visual findings: rough, scaly erythematous patch on the scalp of an older man.
2. Differential reasoning: SCC in situ vs actinic keratosis; no induration or ulceration.
3. Final diagnosis: Actinic keratosis""",
        "actinic_keratosis",
    ),
    (
        """Visual findings: small, symmetric, uniformly brown papule with a regular network.
Differential reasoning: melanoma is unlikely given symmetry and a single colour.
Final diagnosis: benign melanocytic naevus""",
        "nevus",
    ),
    (
        """Visual Findings - keratotic nodule with a central crater on sun-damaged skin.
Differential Reasoning - keratoacanthoma-like growth; BCC less likely as no pearly rim.
Final Diagnosis - Squamous cell carcinoma""",
        "scc",
    ),
    (
        """VISUAL FINDINGS: Dark, raised lesion with several colours.
DIFFERENTIAL REASONING: Nevus vs melanoma. Irregular border and regression structures.
FINAL DIAGNOSIS: MM""",
        "melanoma",
    ),
    (
        """Visual findings: light-brown, well demarcated plaque with a greasy surface.
Differential reasoning: Could be a solar lentigo, but the surface suggests otherwise.
Final diagnosis: SK""",
        "seborrheic_keratosis",
    ),
    (
        """Findings: translucent papule, rolled edge.
Final diagnosis: BCC""",
        "bcc",
    ),
    (
        """Visual findings: scaly pink macules on the dorsal hands.
Final diagnosis: AK (actinic keratosis), multiple.""",
        "actinic_keratosis",
    ),
    (
        """Visual findings: brown papule, regular pigment network.
Differential reasoning: a seborrheic keratosis was considered but the network is melanocytic.
Final diagnosis: Not melanoma; this is a benign compound nevus.""",
        "nevus",
    ),
    (
        """Visual findings: irregular dark macule.
Final diagnosis: melanoma in situ (lentigo maligna type).""",
        "melanoma",
    ),
    (
        """Visual findings: erythematous nodule.
Differential reasoning: BCC vs SCC.
Final diagnosis: basal cell carcinoma or squamous cell carcinoma; biopsy needed.""",
        None,
    ),
    (
        """Visual findings: pigmented lesion, blurry photo.
Final diagnosis: cannot determine from this image; please provide a dermoscopic view.""",
        None,
    ),
    (
        """Visual findings: asymmetric lesion.
Final diagnosis: Melanomma""",
        "melanoma",
    ),
    (
        """Visual findings: waxy plaque.
Final diagnosis: Seborheic keratosis""",
        "seborrheic_keratosis",
    ),
    (
        """Visual findings: pearly nodule.
Final diagnosis: Basal cel carcinoma""",
        "bcc",
    ),
    (
        """Visual findings: symmetric brown papule in a child.
Final diagnosis: Neavus (benign).""",
        "nevus",
    ),
    (
        """Visual findings: dome-shaped flesh-coloured papule with a dimple sign.
Final diagnosis: Dermatofibroma""",
        None,
    ),
    (
        """Visual findings: brown macule with regular network.
Differential reasoning: nevus, lentigo; melanoma cannot be excluded entirely.
Final diagnosis: likely a benign nevus, although melanoma cannot be ruled out without dermoscopy.""",
        "nevus",
    ),
    (
        """**Findings**: crusted keratotic papule on the lip.
**Final diagnosis**: cSCC (cutaneous squamous cell carcinoma)""",
        "scc",
    ),
    (
        """Visual findings: rough scaly macule on the forehead.
Final diagnosis: solar keratosis""",
        "actinic_keratosis",
    ),
    (
        """Visual findings: multiple brown stuck-on plaques on the back.
Final diagnosis: seborrhoeic keratoses""",
        "seborrheic_keratosis",
    ),
    (
        """Visual findings: irregularly shaped lesion.
Final diagnosis: Melanoma vs dysplastic nevus""",
        None,
    ),
    # --- Skin-R1 style: <think> ... </think><answer> ... </answer>
    (
        """<think>The lesion is pigmented and asymmetric with atypical network; nevus and melanoma are the
main considerations. Blue-white veil tips it toward malignancy.</think><answer>Melanoma</answer>""",
        "melanoma",
    ),
    (
        """<think>Pearly translucent border, arborizing vessels. Seborrheic keratosis would have a
stuck-on look. This is a basal cell carcinoma.</think>
<answer>BCC</answer>""",
        "bcc",
    ),
    (
        """<think>Warty, stuck-on, sharply demarcated, milia-like cysts and comedo-like openings.</think>
<answer>seborrheic keratosis</answer>""",
        "seborrheic_keratosis",
    ),
    (
        """<think>Scaly erythematous patch on chronically sun-exposed skin, no induration, so not SCC.
</think><answer>actinic keratosis</answer>""",
        "actinic_keratosis",
    ),
    (
        """<think>Symmetric, uniform colour, regular network. Melanoma unlikely.</think><answer>The final
answer is nevus.</answer>""",
        "nevus",
    ),
    (
        """<think>Indurated keratotic nodule, ulcerated. Differential: SCC, keratoacanthoma, BCC.
</think><answer>Squamous cell carcinoma</answer>""",
        "scc",
    ),
    ("""<think>Hard to tell; poor lighting.</think><answer></answer>""", None),
    (
        """<think>Regular pigment network and symmetric; however the history of change is worrying.</think>
<answer>Diagnosis: melanoma</answer>""",
        "melanoma",
    ),
    ("""<think>Features of a benign lesion.</think><answer>benign</answer>""", None),
    (
        """<think>Could be SK or pigmented BCC; the blue-grey ovoid nests favour BCC.</think>
<answer>Pigmented basal cell carcinoma.</answer>""",
        "bcc",
    ),
    ("""<think>The network is atypical...</think><answer>melanoma or nevus</answer>""", None),
    ("""<think>stuck-on appearance</think><answer>SEK""", "seborrheic_keratosis"),
    (
        """<think>Rough, gritty patch; AK vs early SCC in situ. No induration.</think><answer>ACK</answer>""",
        "actinic_keratosis",
    ),
    ("""<think>mole-like lesion, symmetric</think><answer>mole</answer>""", "nevus"),
    (
        """<think>Not a melanoma: no atypical network. Not a BCC: no vessels. It is keratotic and
stuck-on.</think><answer>Seborrheic keratosis (SK)</answer>""",
        "seborrheic_keratosis",
    ),
    # --- JSON answers
    (
        """{"findings": "pearly papule", "differential": ["bcc", "scc"], "final_diagnosis": "basal cell carcinoma"}""",
        "bcc",
    ),
    (
        """```json
{"diagnosis": "Melanoma", "differential_diagnosis": ["dysplastic nevus", "seborrheic keratosis"],
 "confidence": 0.8}
```""",
        "melanoma",
    ),
    (
        """Here is my assessment in JSON: {"final diagnosis": "nevus", "ddx": "melanoma, seborrheic keratosis"}""",
        "nevus",
    ),
    ("""{"answer": "SCC"}""", "scc"),
    ("""{"final_diagnosis": "", "differential": ["melanoma"]}""", None),
    (
        """{"final_diagnosis": {"name": "Actinic keratosis", "icd10": "L57.0"}}""",
        "actinic_keratosis",
    ),
    (
        """{"final_diagnosis": "seborrhoeic keratosis", "differential": ["melanoma", "bcc"]""",
        "seborrheic_keratosis",
    ),
    # --- free text without sections
    ("This is most consistent with a seborrheic keratosis.", "seborrheic_keratosis"),
    (
        "The image shows a pearly papule with telangiectasias, most likely a basal cell carcinoma.",
        "bcc",
    ),
    ("I would classify this lesion as melanoma.", "melanoma"),
    ("Benign-appearing melanocytic naevus; no features of melanoma.", "nevus"),
    ("The lesion could be a nevus, a melanoma or a seborrheic keratosis.", None),
    ("Sorry, I cannot provide a medical diagnosis.", None),
    (
        "Probably an actinic keratosis on sun-damaged skin, though early SCC should be excluded.",
        "actinic_keratosis",
    ),
    ("Features favour squamous cell carcinoma over BCC.", "scc"),
    ("The lesion measures 6 mm and is symmetric; appearance is that of a benign nevus.", "nevus"),
    ("Diagnosis: MEL", "melanoma"),
    ("Assessment: Non-melanoma skin cancer.", None),
    ("Impression: keratosis, unclear type.", None),
    ("Conclusion: nodular BCC. Recommend excision.", "bcc"),
    ("Final answer: nevus\nConfidence: moderate", "nevus"),
    ("The final diagnosis is squamous-cell carcinoma, well differentiated.", "scc"),
    ("Rather than a seborrheic keratosis, this represents melanoma.", "melanoma"),
    ("No evidence of malignancy. Diagnosis: seborrheic wart.", "seborrheic_keratosis"),
    (
        "Most likely diagnosis: solar keratosis; differential includes Bowen disease.",
        "actinic_keratosis",
    ),
    ("The answer is BCC/SCC.", None),
    ("", None),
    ("   \n  ", None),
    # --- a second batch, written after the parser and run once before any change (25/25 right)
    (
        "Visual findings: A 4 mm tan papule.\nDifferential reasoning: The main alternatives are dermatofibroma "
        "and nevus.\nFinal diagnosis: Intradermal nevus.",
        "nevus",
    ),
    (
        "<think>Irregular pigmentation with streaks at periphery; Spitz nevus is possible in a child, but this "
        "is an adult.</think><answer>Final diagnosis: Superficial spreading melanoma</answer>",
        "melanoma",
    ),
    (
        "**Final Diagnosis:** Seborrheic Keratosis (benign). No further treatment needed.",
        "seborrheic_keratosis",
    ),
    (
        "Findings suggest a basal cell carcinoma; however, a biopsy is recommended to confirm.",
        "bcc",
    ),
    ("Diagnosis: probable actinic keratosis", "actinic_keratosis"),
    ('{"final_diagnosis": "Melanoma", "differential_diagnosis": "Atypical nevus"}', "melanoma"),
    ("The lesion is not a melanoma. It is a seborrheic keratosis.", "seborrheic_keratosis"),
    ("Final diagnosis: I am unable to make a diagnosis.", None),
    ("<answer>nevus</answer>", "nevus"),
    ("Final diagnosis: Bowen's disease", None),
    (
        "Visual findings: ulcerated nodule on the ear of an elderly farmer.\nFinal diagnosis: squamous cell ca",
        None,
    ),
    ("Impression: BCC, superficial subtype.", "bcc"),
    (
        "Visual findings: pink scaly papule.\nFinal diagnosis: Actinic keratoses",
        "actinic_keratosis",
    ),
    ("Final diagnosis: melanoma (cannot exclude a dysplastic naevus)", "melanoma"),
    ("<think>Hmm.</think>", None),
    (
        "The most likely diagnosis is a seborrhoeic keratosis, with pigmented BCC a less likely alternative.",
        "seborrheic_keratosis",
    ),
    ("Final Diagnosis: Squamous Cell Carcinoma in situ", "scc"),
    ("Final diagnosis:\nNevus", "nevus"),
    ("Final diagnosis - nevus vs. seborrheic keratosis", None),
    ("Answer: B) Melanoma", "melanoma"),
    ("This appears to be an actinic keratosis (AK).", "actinic_keratosis"),
    (
        "Malignant melanoma should be strongly suspected. Final diagnosis: malignant melanoma.",
        "melanoma",
    ),
    ("Diagnosis: Benign keratosis", None),
    ("Final diagnosis: Basal-cell carcinoma, pigmented.", "bcc"),
    ("Given the features, seborrheic keratosis.", "seborrheic_keratosis"),
]
