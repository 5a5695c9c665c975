"""Index sets of MediaPipe's 478-point face mesh (468 mesh points + 10 iris points).

The indices are facts about MediaPipe's canonical face mesh topology (Apache-2.0),
written out as ordered loops so that they can be used as polygons. "Left" and "right"
are the *person's* sides: the person's right eye appears on the image's left.
"""

from __future__ import annotations

import collections
import functools
import itertools

import numpy as np

NUM_LANDMARKS = 478
NUM_MESH_POINTS = 468  # without the 10 iris points

# Closed loops, in order (the first point is not repeated at the end).
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
RIGHT_IRIS = (469, 470, 471, 472)
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

# Eyelids, from the outer corner (lower) or inner corner (upper) round to the other corner.
RIGHT_EYE_LOWER_LID = (33, 7, 163, 144, 145, 153, 154, 155, 133)
RIGHT_EYE_UPPER_LID = (133, 173, 157, 158, 159, 160, 161, 246, 33)
LEFT_EYE_LOWER_LID = (263, 249, 390, 373, 374, 380, 381, 382, 362)
LEFT_EYE_UPPER_LID = (362, 398, 384, 385, 386, 387, 388, 466, 263)


def _lid_pairs(upper: tuple, lower: tuple) -> tuple[tuple[int, int], ...]:
    n = len(upper)
    return tuple((upper[i], lower[n - 1 - i]) for i in range(1, n - 1))


# (upper lid point, lower lid point) facing each other across each eye, corners excluded.
RIGHT_EYE_LID_PAIRS = _lid_pairs(RIGHT_EYE_UPPER_LID, RIGHT_EYE_LOWER_LID)
LEFT_EYE_LID_PAIRS = _lid_pairs(LEFT_EYE_UPPER_LID, LEFT_EYE_LOWER_LID)
RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (263, 362)  # outer, inner
# Mid-lid points used for the eye opening (upper, lower).
RIGHT_EYE_MID_LIDS = (159, 145)
LEFT_EYE_MID_LIDS = (386, 374)

RIGHT_EYEBROW = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_EYEBROW = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
RIGHT_EYEBROW_LOWER = RIGHT_EYEBROW[:5]  # the brow's lower edge, outer to inner
LEFT_EYEBROW_LOWER = LEFT_EYEBROW[:5]

MOUTH_CORNERS = (61, 291)  # person's right, left
INNER_LIP_MIDDLE = (13, 14)  # upper, lower
NOSE_TIP = 1
FOREHEAD = 10
CHIN = 152

# Pairs mirrored across the face's midline (person's right, person's left), used for
# the head's left-right axis.
SYMMETRIC_PAIRS = (
    (33, 263),
    (133, 362),
    (159, 386),
    (145, 374),
    (70, 300),
    (105, 334),
    (107, 336),
    (61, 291),
    (234, 454),
    (127, 356),
    (93, 323),
    (132, 361),
    (58, 288),
    (172, 397),
    (136, 365),
    (150, 379),
    (149, 378),
    (176, 400),
    (148, 377),
    (129, 358),
    (98, 327),
)
# Points on the midline, from the forehead down to the chin.
MIDLINE = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 17, 18, 200, 199, 175, 152)

# Each landmark's mirror across the face's midline (an involution; midline points map to
# themselves), found by tools/make_mirror_map.py from the bundled portrait and its mirror
# image; it agrees with SYMMETRIC_PAIRS and MIDLINE (tests/test_faces.py).
MIRROR = (
    0,
    1,
    2,
    248,
    4,
    5,
    6,
    249,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    250,
    251,
    252,
    253,
    254,
    255,
    256,
    257,
    258,
    259,
    260,
    261,
    262,
    263,
    264,
    265,
    266,
    267,
    268,
    269,
    270,
    271,
    272,
    273,
    274,
    275,
    276,
    277,
    278,
    279,
    280,
    281,
    282,
    283,
    284,
    285,
    286,
    287,
    288,
    289,
    290,
    291,
    292,
    293,
    294,
    295,
    296,
    297,
    298,
    299,
    300,
    301,
    302,
    303,
    304,
    305,
    306,
    307,
    308,
    309,
    310,
    311,
    312,
    313,
    314,
    315,
    316,
    317,
    318,
    319,
    320,
    321,
    322,
    323,
    94,
    324,
    325,
    326,
    327,
    328,
    329,
    330,
    331,
    332,
    333,
    334,
    335,
    336,
    337,
    338,
    339,
    340,
    341,
    342,
    343,
    344,
    345,
    346,
    347,
    348,
    349,
    350,
    351,
    352,
    353,
    354,
    355,
    356,
    357,
    358,
    359,
    360,
    361,
    362,
    363,
    364,
    365,
    366,
    367,
    368,
    369,
    370,
    371,
    372,
    373,
    374,
    375,
    376,
    377,
    378,
    379,
    151,
    152,
    380,
    381,
    382,
    383,
    384,
    385,
    386,
    387,
    388,
    389,
    390,
    164,
    391,
    392,
    393,
    168,
    394,
    395,
    396,
    397,
    398,
    399,
    175,
    400,
    401,
    402,
    403,
    404,
    405,
    406,
    407,
    408,
    409,
    410,
    411,
    412,
    413,
    414,
    415,
    416,
    417,
    418,
    195,
    419,
    197,
    420,
    199,
    200,
    421,
    422,
    423,
    424,
    425,
    426,
    427,
    428,
    429,
    430,
    431,
    432,
    433,
    434,
    435,
    436,
    437,
    438,
    439,
    440,
    441,
    442,
    443,
    444,
    445,
    446,
    447,
    448,
    449,
    450,
    451,
    452,
    453,
    454,
    455,
    456,
    457,
    458,
    459,
    460,
    461,
    462,
    463,
    464,
    465,
    466,
    467,
    3,
    7,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    45,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    66,
    67,
    68,
    69,
    70,
    71,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    83,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
    91,
    92,
    93,
    95,
    96,
    97,
    98,
    99,
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
    108,
    109,
    110,
    111,
    112,
    113,
    114,
    115,
    116,
    117,
    118,
    119,
    120,
    121,
    122,
    123,
    124,
    125,
    126,
    127,
    128,
    129,
    130,
    131,
    132,
    133,
    134,
    135,
    136,
    137,
    138,
    139,
    140,
    141,
    142,
    143,
    144,
    145,
    146,
    147,
    148,
    149,
    150,
    153,
    154,
    155,
    156,
    157,
    158,
    159,
    160,
    161,
    162,
    163,
    165,
    166,
    167,
    169,
    170,
    171,
    172,
    173,
    174,
    176,
    177,
    178,
    179,
    180,
    181,
    182,
    183,
    184,
    185,
    186,
    187,
    188,
    189,
    190,
    191,
    192,
    193,
    194,
    196,
    198,
    201,
    202,
    203,
    204,
    205,
    206,
    207,
    208,
    209,
    210,
    211,
    212,
    213,
    214,
    215,
    216,
    217,
    218,
    219,
    220,
    221,
    222,
    223,
    224,
    225,
    226,
    227,
    228,
    229,
    230,
    231,
    232,
    233,
    234,
    235,
    236,
    237,
    238,
    239,
    240,
    241,
    242,
    243,
    244,
    245,
    246,
    247,
    473,
    476,
    475,
    474,
    477,
    468,
    471,
    470,
    469,
    472,
)

# Rigid ends of the midline, for the head's vertical axis: the upper forehead and the
# base of the nose. (The chin is not rigid: it drops when the mouth opens.)
FOREHEAD_TOP = (10, 151, 9)
NOSE_BASE = (94, 2)


def _chains(loop: tuple, first: int, second: int) -> tuple[list, list]:
    """Split a closed loop at two of its points into two chains from ``first`` to ``second``."""
    i, j = loop.index(first), loop.index(second)
    n = len(loop)
    forward = [loop[(i + k) % n] for k in range((j - i) % n + 1)]
    backward = [loop[(i - k) % n] for k in range((i - j) % n + 1)]
    return forward, backward


def _strip(first: list, second: list) -> list[tuple[int, int, int]]:
    """Triangles between two chains with equal ends (a ladder), e.g. across an open mouth."""
    assert len(first) == len(second) and first[0] == second[0] and first[-1] == second[-1]
    triangles = []
    for k in range(len(first) - 1):
        a, b, c, d = first[k], first[k + 1], second[k + 1], second[k]
        for tri in ((a, b, c), (a, c, d)):
            if len(set(tri)) == 3:
                triangles.append(tri)
    return triangles


@functools.lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """``(T, 3)`` triangles of MediaPipe's face mesh; the mouth and eyes are holes
    (see :func:`mouth_triangles`).

    The mesh's triangles are the 3-cliques of MediaPipe's tessellation edges (read from
    the installed mediapipe package; it ships edges, not faces), less the few cliques
    that are not faces (all three edges shared by three cliques).
    """
    try:
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION
    except ImportError as exc:  # pragma: no cover - mediapipe is needed for landmarks anyway
        from ..errors import ReanimateError

        raise ReanimateError(f"the face mesh topology needs mediapipe ({exc})") from None
    neighbours: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in FACEMESH_TESSELATION:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in FACEMESH_TESSELATION for c in neighbours[a] & neighbours[b]}
    uses = collections.Counter(e for t in cliques for e in itertools.combinations(t, 2))
    faces = [t for t in cliques if not all(uses[e] > 2 for e in itertools.combinations(t, 2))]
    return np.array(sorted(faces), dtype=np.int64)


def mouth_triangles() -> np.ndarray:
    """``(T, 3)`` strip of triangles closing the mouth hole, between the inner lips."""
    lower, upper = _chains(LIPS_INNER, MOUTH_INNER_CORNERS[0], MOUTH_INNER_CORNERS[1])
    return np.array(_strip(lower, upper), dtype=np.int64)


MOUTH_INNER_CORNERS = (78, 308)  # person's right, left
