"""Scoring methods of the MONAI Label app."""

from .disagreement_scoring import TeacherStudentDisagreementScoring, disagreement_key

__all__ = ["TeacherStudentDisagreementScoring", "disagreement_key"]
