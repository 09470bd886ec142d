import GLMCIR

/// Signal processing, string, ML-domain and training-preview ops. (Being written.)
public enum MiscOps {
    public static let all: [OpDefinition] = []
}
