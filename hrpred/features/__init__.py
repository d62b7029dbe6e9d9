"""hrpred.features"""
