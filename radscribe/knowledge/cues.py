"""The word lists of the report labeler's grammar: negation, uncertainty, pseudo-negation and clause cues.

NegEx / CheXpert-labeler style cue phrases (lower case; matched as whole token sequences). Domain words
(finding synonyms, anatomy, statements) live in the other knowledge modules; these are the grammar's.
"""

from __future__ import annotations

NEG_PRE = (
    "no", "not", "without", "nor", "neither", "no evidence of", "no evidence for", "no signs of", "no sign of",
    "no radiographic evidence of", "no radiographic signs of", "negative for", "free of", "clear of",
    "absence of", "absent", "no definite", "no definitive", "no findings of", "no finding of", "no new",
    "resolution of", "resolved", "no longer", "no convincing", "no visible", "no visualized", "no focal",
    "no suspicious", "no obvious", "no significant", "no gross", "no apparent", "no acute", "no large",
    "interval resolution of", "rather than", "removal of", "no residual", "no other", "no evidence",
    "no xxxx of", "not seen", "none", "free from", "negative", "no displaced", "no definite evidence of",
    "grossly clear of", "otherwise clear of", "clear of any", "no typical findings of", "no findings to suggest",
    "no radiographic findings of", "no evidence of any", "no focal areas of", "no areas of",
)
NEG_POST = (
    "is not seen", "are not seen", "not seen", "not identified", "not visualized", "not present",
    "not evident", "not demonstrated", "not appreciated", "is absent", "are absent", "has resolved",
    "have resolved", "resolved", "were not seen", "was not seen", "no longer seen", "no longer visualized",
    "not detected", "not noted", "not visible", "are not identified", "is not identified", "is negative",
    "has cleared", "have cleared", "not apparent", "is not present", "are not present", "not well seen",
    "have been removed", "has been removed", "within normal limits", "within limits of normal",
    "not well-seen", "is not well seen", "is not well-seen",
)
UNC_PRE = (
    "may", "might", "could", "possible", "possibly", "probable", "probably", "likely", "questionable",
    "question of", "questioned", "suggestive of", "suggest", "suggests", "suggesting", "suggestion of",
    "suspicious for", "suspicious of", "suspected", "suspect", "concern for", "concerning for", "worrisome for",
    "cannot exclude", "can not exclude", "cannot rule out", "can not rule out", "rule out", "to rule out",
    "differential", "differential diagnosis", "versus", "vs", "equivocal", "indeterminate", "uncertain",
    "presumably", "presumed", "perhaps", "consider", "considered", "could represent", "may represent",
    "might represent", "favor", "favored", "?", "not excluded", "not ruled out", "difficult to exclude",
    "cannot be excluded", "can not be excluded", "cannot be ruled out", "potentially", "evaluation for",
    "assessment for", "evaluate for", "limited evaluation of", "question", "suspicion for", "suspicion of",
    "correlate clinically for", "clinical correlation for", "correlation for", "may reflect", "could reflect",
    "history of", "correlate clinically with history of", "rule-out", "to identify", "to exclude",
    "to evaluate for", "to assess for",
)
UNC_POST = (
    "cannot be excluded", "can not be excluded", "not excluded", "cannot be ruled out", "not ruled out",
    "is not excluded", "could not be excluded", "is possible", "is questioned", "is suspected",
    "not entirely excluded", "is likely", "less likely", "unlikely", "is not entirely excluded",
    "can not be ruled out", "is difficult to exclude", "not completely excluded", "is questionable",
    "?", "is not ruled out", "are not excluded", "versus", "vs", "would be a consideration", "is a consideration",
    "is considered", "not excluded", "may not be demonstrated", "may not be visualized", "may not be seen",
    "may not be apparent",
)
PSEUDO = (
    "no change", "no significant change", "no interval change", "not changed", "no increase", "no decrease",
    "not only", "without change", "no definite change", "not significantly changed", "no appreciable change",
    "no significant interval change", "not appreciably changed", "no substantial change", "no further",
    "not significantly", "no marked change", "no appreciable interval change", "no change in",
)
TERMINATION = (
    "but", "however", "although", "though", "except", "except for", "aside from", "apart from", "other than",
    "with the exception of", "there is", "there are", "there has been", "there have been", "there was",
    "yet", "nevertheless", "still", "which", "whereas", "while", "otherwise",
    "there", "again noted", "is seen", "are seen", "is noted", "are noted", "is present", "are present",
)
BREAK_PUNCT = {";", ":", "(", ")"}
CLAUSE_OPENERS = {"the", "a", "an", "this", "these", "it", "with", "stable", "heart", "lungs", "chronic", "old",
                   "likely", "probably", "consistent", "compatible", "suggesting", "may"}
# "..., no effusion seen, left hilar calcifications": a comma after these words closes the clause
CLAUSE_ENDERS = {"seen", "identified", "noted", "present", "visualized", "demonstrated", "evident", "appreciated"}
# adjectives that are a finding alone ("calcifications") but only describe the next finding ("calcified granuloma")
MODIFIERS = {"calcified", "calcific", "densely calcified", "partially calcified"}
