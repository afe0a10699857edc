"""Decoding: turning a model's output distributions into sequences. One home:

- :mod:`rnnkit.decode.ctc`: CTC's best path and the prefix beam search with a language
  model (Hannun et al. 2014).
- :mod:`rnnkit.decode.lexicon`: word-level decoding of a character model, the prefix
  search constrained to a lexicon's words and scored by a word n-gram.
- :mod:`rnnkit.decode.align`: forced alignment (Viterbi over CTC's topology) and the
  dense frame labels framewise training reads.
- :mod:`rnnkit.decode.hybrid`: hybrid decoding of framewise posteriors, Viterbi over a
  phone loop with a phone bigram.
- :mod:`rnnkit.decode.sampling`: drawing from a language model, with temperature, top-k
  and nucleus filtering.
- Viterbi decoding stays with the models that own it: :meth:`rnnkit.crf.CRF.decode`
  and :meth:`~rnnkit.crf.CRF.decode_nbest` (exact k-best) for the linear-chain CRF,
  :meth:`rnnkit.hmm.HMMTagger.tag` for the HMM.
"""

from rnnkit.decode.align import Alignment, ctc_align, frame_labels
from rnnkit.decode.ctc import Hypothesis, PrefixLM, ctc_greedy_decode, ctc_prefix_beam_search
from rnnkit.decode.hybrid import PhoneLoop, collapse, viterbi
from rnnkit.decode.lexicon import Lexicon, ctc_lexicon_beam_search
from rnnkit.decode.sampling import filter_logits, sample

__all__ = ["Alignment", "Hypothesis", "Lexicon", "PhoneLoop", "PrefixLM", "collapse", "ctc_align",
           "ctc_greedy_decode", "ctc_lexicon_beam_search", "ctc_prefix_beam_search", "filter_logits",
           "frame_labels", "sample", "viterbi"]
